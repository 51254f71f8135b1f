"""Shared fixtures: small task settings per space so every space can be exercised on a CPU."""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import torch

import search_spaces
from search_spaces import SearchSpace

if TYPE_CHECKING:
    from nas.cost.latency import LatencyTable

ALL_SPACES = search_spaces.list_spaces()
LARGE = {"resnet101", "resnet152", "wide_resnet50_2", "wide_resnet101_2"}


def small_space(name: str, *, num_classes: int = 7) -> SearchSpace:
    """The space at a small input (fast), with a non-default head and 1 or 3 input channels."""
    size = (16, 16) if name in LARGE else (32, 32)
    channels = 1 if name.endswith(("20", "34")) else 3
    return search_spaces.create(
        name, num_classes=num_classes, in_channels=channels, input_size=size
    )


def random_widths(space: SearchSpace, seed: int) -> dict[str, int]:
    g = torch.Generator().manual_seed(seed)
    return {u.name: int(torch.randint(1, u.max_width + 1, (1,), generator=g)) for u in space.units}


@torch.no_grad()
def randomize_bn(model: torch.nn.Module, seed: int, in_shape: tuple[int, ...]) -> None:
    """Give BN layers non-trivial affine parameters and realistic running statistics."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.momentum = None  # cumulative average over the calibration passes
    model.train()
    for _ in range(2):
        model(torch.randn(8, *in_shape, generator=g))
    model.eval()


def slow_params(values: Iterable[Any], slow: Container[Any]) -> list[Any]:
    """``values`` for ``parametrize`` (or a fixture's params), those in ``slow`` marked ``slow``:
    the instances ``-m "not slow"`` leaves out."""
    return [pytest.param(v, marks=pytest.mark.slow) if v in slow else v for v in values]


@pytest.fixture(params=slow_params(ALL_SPACES, LARGE))  # the four large spaces: slow
def space_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: extra threads only add contention on a shared 2-core machine (use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_latency_table(space: SearchSpace, *, batch: int = 16) -> LatencyTable:
    """A complete latency table of ``space`` for this process (cpu, torch's threads), its grid
    filled from a smooth increasing function of the widths instead of timings: the tests of
    everything that reads a table, without timing anything."""
    from nas.cost.latency import LatencyTable, environment
    from nas.cost.timing import layer_configs

    entries, layers = layer_configs(space)
    for e in entries.values():
        pixels = e.in_hw[0] * e.in_hw[1] / e.stride**2
        e.ms = [
            [1e-6 * e.kernel**2 * pixels * ci * co + 2e-4 * (ci + co) + 0.01 for co in e.grid_out]
            for ci in e.grid_in
        ]
    env = environment("cpu", torch.get_num_threads(), batch)
    return LatencyTable(
        space.name,
        space.num_classes,
        space.in_channels,
        space.input_size,
        env,
        0,
        entries,
        layers,
        fixed_ms=0.05,
        scale=1.1,
        complete=True,
    )
