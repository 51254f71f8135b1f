from __future__ import annotations

import pytest
import torch

import search_spaces
from search_spaces import SearchSpace
from search_spaces.errors import SpaceError, SpecError

CIFAR = [f"resnet{d}{s}" for d in (20, 32, 44, 56, 110) for s in ("", "_b")]
TORCHVISION = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "wide_resnet50_2",
    "wide_resnet101_2",
]


TRACED = ["mobilenet_v2_cifar"]  # registered by name, units found by tracing


def test_lists_every_space() -> None:
    assert set(search_spaces.list_spaces()) == set(CIFAR + TORCHVISION + TRACED)


def test_unknown_space_is_refused_with_the_choices() -> None:
    with pytest.raises(SpaceError, match=r"unknown search space 'resnet57'.*resnet56"):
        search_spaces.create("resnet57")


def test_duplicate_registration_is_refused() -> None:
    entry = search_spaces.get_entry("resnet20")
    with pytest.raises(SpaceError, match="already registered"):
        search_spaces.register(
            "resnet20",
            entry.factory,
            default_num_classes=10,
            default_input_size=(32, 32),
            description="again",
        )
    assert search_spaces.get_entry("resnet20") is entry


def test_create_uses_defaults_and_caches() -> None:
    a = search_spaces.create("resnet56")
    assert isinstance(a, SearchSpace)
    assert (a.num_classes, a.in_channels, a.input_size) == (10, 3, (32, 32))
    assert search_spaces.create("resnet56", num_classes=10) is a
    b = search_spaces.create("resnet50")
    assert (b.num_classes, b.input_size) == (1000, (224, 224))


@pytest.mark.parametrize("bad", [{"num_classes": 0}, {"in_channels": 0}, {"input_size": (0, 32)}])
def test_create_rejects_impossible_tasks(bad: dict) -> None:
    with pytest.raises(SpecError):
        search_spaces.create("resnet20", **bad)


@pytest.mark.parametrize("name", ["resnet56_b", "resnet50"])
def test_uniform_widths_in_multiples_of_8(name: str) -> None:
    space = search_spaces.create(name)
    widths = space.uniform_widths_for_macs(0.5, multiple=8)
    for unit, w in widths.items():
        assert w % 8 == 0 or w == space.max_widths[unit], (unit, w)
    # the nearest such network: no other common ratio on the grid of 8 comes closer
    assert abs(space.spec(widths).macs_ratio() - 0.5) < 0.06


def test_round_width() -> None:
    assert search_spaces.round_width(45.2, 64, 8) == 48
    assert search_spaces.round_width(2.0, 64, 8) == 8  # at least one multiple
    assert search_spaces.round_width(70.0, 64, 8) == 64  # at most the maximum
    assert search_spaces.round_width(4.4, 16) == 4


def test_a_cifar_resnet_of_any_depth_6n_plus_2_is_built_by_name_but_not_listed() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    for name, blocks in (("resnet8", 1), ("resnet14_b", 2), ("resnet26", 4), ("cifar_resnet50", 8)):
        space = search_spaces.create(name)
        model = space.build()
        stage = model.get_submodule("layer2")
        assert isinstance(stage, torch.nn.Sequential) and len(stage) == blocks
        with FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 3, 32, 32))
        assert counter.get_total_flops() == 2 * space.macs()
        assert name not in search_spaces.list_spaces()
    assert search_spaces.create("resnet50").family != "cifar_resnet"  # torchvision's keeps it
    for bad in ("resnet15", "resnet2", "resnet14_c"):
        with pytest.raises(SpaceError):
            search_spaces.create(bad)
