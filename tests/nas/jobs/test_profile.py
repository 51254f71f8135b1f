"""nas.jobs.profile: nas profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import search_spaces
from tests.nas.conftest import run


@pytest.mark.e2e
def test_profile_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "profile", "resnet56", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["space"] == "resnet56" and report["macs"] == 125_485_696
    assert report["flops"] == 2 * report["macs"]
    assert report["params"] == search_spaces.create("resnet56").params()
    assert len(report["units"]) == 27
    assert report["frozen"] == []  # a hand-written space fixes its channels by design
    assert report["units"][0] == {
        "name": "layer1.0.conv1",
        "kind": "block",
        "width": 16,
        "max_width": 16,
        "granularity": 1,
    }


@pytest.mark.e2e
def test_profile_input_size_and_classes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "profile", "resnet50", "--input-size", "1x28x28", "--num-classes", "10", "--json"
    )
    report = json.loads(out)
    space = search_spaces.create("resnet50", num_classes=10, in_channels=1, input_size=(28, 28))
    assert code == 0 and report["macs"] == space.macs() and report["input_size"] == [28, 28]


@pytest.mark.e2e
def test_profile_of_a_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = search_spaces.create("resnet20_b")
    space.spec(space.uniform_widths(0.5)).save(tmp_path / "arch.json")
    code, out, _ = run(capsys, "profile", "--arch", str(tmp_path / "arch.json"))
    assert code == 0
    assert "layer3" in out and "32 /    64" in out
    assert f"{space.macs(space.uniform_widths(0.5)):,}" in out
