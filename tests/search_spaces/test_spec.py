from __future__ import annotations

import json
from pathlib import Path

import pytest

import search_spaces
from search_spaces import WidthSpec
from search_spaces.errors import SpecError


def _spec() -> WidthSpec:
    space = search_spaces.create("resnet20_b", num_classes=4, in_channels=1, input_size=(8, 8))
    return space.spec(space.uniform_widths(0.5))


def test_json_round_trip(tmp_path: Path) -> None:
    spec = _spec()
    spec.save(tmp_path / "arch.json")
    loaded = WidthSpec.load(tmp_path / "arch.json")
    assert loaded == spec
    assert loaded.macs() == spec.macs() and loaded.input_size == (8, 8)
    data = json.loads((tmp_path / "arch.json").read_text())
    assert data["space"] == "resnet20_b" and data["widths"]["layer3"] == 32


def test_macs_ratio_of_the_full_spec_is_one() -> None:
    space = search_spaces.create("resnet56")
    assert space.spec().macs_ratio() == 1.0


def _edit(**changes: object) -> dict:
    data = _spec().to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_edit(space="resnet57"), "unknown search space 'resnet57'"),
        (_edit(widths={**_spec().widths, "layer9": 3}), "unknown unit.*layer9"),
        (
            _edit(widths={k: v for k, v in _spec().widths.items() if k != "layer2"}),
            "missing width.*layer2",
        ),
        (
            _edit(widths={**_spec().widths, "layer1.0.conv1": 0}),
            "layer1.0.conv1 is 0; it must be between 1 and 16",
        ),
        (_edit(widths={**_spec().widths, "layer3": 65}), "layer3 is 65; it must be between 1"),
        (_edit(widths={**_spec().widths, "layer3": 3.5}), "must be an integer"),
        (_edit(num_classes="ten"), "'num_classes' must be an integer"),
        (_edit(input_size=[8]), "'input_size' must be"),
        (_edit(format="something-else"), "not a channel-nas width spec"),
        ({"space": "resnet20"}, "missing field"),
    ],
)
def test_invalid_specs_are_refused_with_one_line(data: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        WidthSpec.from_dict(data, source="arch.json")
    assert "\n" not in str(info.value) and str(info.value).startswith("arch.json: ")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        WidthSpec.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        WidthSpec.load(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(SpecError, match="JSON object"):
        WidthSpec.load(tmp_path / "list.json")


@pytest.mark.parametrize(
    ("widths", "message"),
    [
        ({"layer1.0.conv1": 999}, "missing width"),
        ({**_spec().widths, "layer3": 65}, "layer3 is 65"),
        ({**_spec().widths, "layer3": 0}, "layer3 is 0"),
    ],
)
def test_a_spec_built_in_python_is_validated_too(widths: dict, message: str) -> None:
    # a spec that exists is valid: no count of MACs or extraction ever sees a bad one
    with pytest.raises(SpecError, match=message):
        WidthSpec("resnet20_b", widths, 4, 1, (8, 8))


def test_stage_width_ratios_say_where_the_channels_went(tmp_path: Path) -> None:
    space = search_spaces.create("resnet20_b")
    widths = dict(space.max_widths)
    for name in widths:  # stage 1 (its stream and its blocks) at a quarter, the rest full
        if name.startswith("layer1"):
            widths[name] = space.max_widths[name] // 4
    spec = space.spec(widths)
    assert spec.stage_width_ratios() == {"layer1": 0.25, "layer2": 1.0, "layer3": 1.0}
    spec.save(tmp_path / "arch.json")
    saved = json.loads((tmp_path / "arch.json").read_text())
    assert saved["stage_width_ratios"] == {"layer1": 0.25, "layer2": 1.0, "layer3": 1.0}
    assert WidthSpec.load(tmp_path / "arch.json") == spec  # informational: read back unchanged
    stem = search_spaces.create("resnet50", num_classes=10, in_channels=3, input_size=(32, 32))
    assert next(iter(stem.spec(stem.uniform_widths(0.5)).stage_width_ratios())) == "stem"
