"""The analytic MAC/parameter counts against torch's own counters, for every space."""

from __future__ import annotations

import pytest
import torch

import search_spaces
from nas.cost import count_model_params, measure_macs
from tests.conftest import random_widths, small_space


@pytest.mark.parametrize("seed", [0, 1])
def test_macs_and_params_match_the_built_model(space_name: str, seed: int) -> None:
    space = small_space(space_name)
    widths = random_widths(space, seed)
    model = space.build(widths)
    measured = measure_macs(model, (space.in_channels, *space.input_size))
    assert space.macs(widths) == pytest.approx(measured, rel=1e-3)
    assert space.params(widths) == count_model_params(model)


@pytest.mark.parametrize(
    ("name", "expected_macs"),
    [
        ("resnet56", 125.49e6),
        ("resnet56_b", 125.75e6),
        ("resnet20", 40.55e6),
        ("resnet110", 252.89e6),
        ("resnet50", 4.09e9),
        ("resnet18", 1.814e9),
    ],
)
def test_reference_values(name: str, expected_macs: float) -> None:
    space = search_spaces.create(name)
    assert space.macs() == pytest.approx(expected_macs, rel=5e-4)


def test_resnet50_at_224_matches_flop_counter() -> None:
    space = search_spaces.create("resnet50")
    assert space.macs() == measure_macs(space.build(), (3, 224, 224))


def test_imagenet_stem_is_counted_at_medium_inputs() -> None:
    space = search_spaces.create("resnet18", num_classes=5, input_size=(96, 80))
    widths = random_widths(space, 3)
    assert space.macs(widths) == measure_macs(space.build(widths), (3, 96, 80))


def test_expected_macs_equal_exact_macs_for_integer_widths(space_name: str) -> None:
    space = small_space(space_name)
    widths = random_widths(space, 5)
    as_tensors = {u: torch.tensor(float(w)) for u, w in widths.items()}
    assert float(space.expected_macs(as_tensors)) == pytest.approx(space.macs(widths), rel=1e-6)


def test_expected_macs_grow_with_every_width() -> None:
    space = search_spaces.create("resnet20_b")
    widths = {u.name: torch.tensor(u.max_width / 2.0, requires_grad=True) for u in space.units}
    space.expected_macs(widths).backward()
    assert all(float(w.grad) > 0 for w in widths.values())  # type: ignore[arg-type]


def test_units_of_each_family() -> None:
    a = search_spaces.create("resnet56")
    assert len(a.units) == 27 and {u.kind for u in a.units} == {"block"}
    b = search_spaces.create("resnet56_b")
    assert [u.name for u in b.units if u.kind == "stage"] == ["layer1", "layer2", "layer3"]
    assert b.max_widths["layer3"] == 64
    r18 = search_spaces.create("resnet18")  # stem feeds layer1 through identity shortcuts
    assert [u.name for u in r18.units if u.kind != "block"] == [
        "layer1",
        "layer2",
        "layer3",
        "layer4",
    ]
    r50 = search_spaces.create("resnet50")  # layer1 starts with a projection: stem is separate
    assert [u.name for u in r50.units if u.kind != "block"][:2] == ["conv1", "layer1"]
    assert len(r50.units) == 1 + 4 + 2 * 16
    assert r50.max_widths["layer4"] == 2048 and r50.max_widths["layer4.2.conv2"] == 512
    wide = search_spaces.create("wide_resnet50_2")
    assert wide.max_widths["layer1.0.conv1"] == 128


def test_build_really_changes_the_tensor_shapes() -> None:
    space = search_spaces.create("resnet20_b")
    widths = space.uniform_widths(0.5)
    model = space.build(widths)
    assert model.get_submodule("layer2.0.conv1").weight.shape == (16, 8, 3, 3)
    assert model.get_submodule("fc").weight.shape == (10, 32)


def test_torchvision_checkpoints_load_into_the_full_network() -> None:
    import torchvision

    reference = torchvision.models.resnet18(num_classes=1000)
    model = search_spaces.create("resnet18").build()
    model.load_state_dict(reference.state_dict())  # strict: same names and shapes
    assert isinstance(model, torchvision.models.ResNet)


def test_small_inputs_get_the_cifar_stem() -> None:
    model = search_spaces.create(
        "resnet50", num_classes=10, in_channels=1, input_size=(28, 28)
    ).build()
    assert model.get_submodule("conv1").weight.shape == (64, 1, 3, 3)
    assert isinstance(model.get_submodule("maxpool"), torch.nn.Identity)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
