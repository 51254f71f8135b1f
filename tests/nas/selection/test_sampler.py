"""nas.selection.sampler: distinct widths, uniform or in a MAC band."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import search_spaces
from nas.cost import smallest_macs
from nas.errors import ConfigError
from nas.selection import RankConfig, WidthSampler, as_dict, sample_pool, sample_widths
from predictors import GraphEncoder
from tests.conftest import small_space
from tests.nas.conftest import choices_of as _choices

pytestmark = pytest.mark.usefixtures("one_thread")


def test_band_sampling_stays_in_the_band_and_is_distinct() -> None:
    space = search_spaces.create("resnet20_b")
    encoder = GraphEncoder.for_space(space)
    band = (0.45 * space.macs(), 0.5 * space.macs())
    rows = sample_widths(encoder, _choices(space), 300, torch.Generator().manual_seed(0), band=band)
    assert rows.shape == (300, len(space.units)) and rows.dtype == torch.int64
    assert len({tuple(r.tolist()) for r in rows}) == 300
    for row in rows:
        widths = as_dict(encoder, row)
        assert all(w in _choices(space)[u] for u, w in widths.items())
        assert band[0] <= space.macs(widths) <= band[1]  # exact MACs, the space's formula
    again = sample_widths(
        encoder, _choices(space), 300, torch.Generator().manual_seed(0), band=band
    )
    assert torch.equal(rows, again)  # seeded
    other = sample_widths(
        encoder, _choices(space), 300, torch.Generator().manual_seed(1), band=band
    )
    assert not torch.equal(rows, other)


def test_band_sampling_is_diverse() -> None:
    space = search_spaces.create("resnet56_b")
    encoder = GraphEncoder.for_space(space)
    target = 0.5 * space.macs()
    rows = sample_widths(
        encoder,
        _choices(space),
        1000,
        torch.Generator().manual_seed(0),
        band=(0.98 * target, target),
    )
    for j, unit in enumerate(space.units):  # every unit takes several widths across the pool
        assert len(set(rows[:, j].tolist())) >= 4, unit.name


def test_sampling_excludes_given_rows() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    gen = torch.Generator().manual_seed(0)
    first = sample_widths(encoder, _choices(space), 100, gen)
    second = sample_widths(encoder, _choices(space), 100, gen, exclude=first)
    assert len(second) == 100
    assert not {tuple(r) for r in first.tolist()} & {tuple(r) for r in second.tolist()}


@pytest.mark.parametrize("name", ["resnet20", "resnet20_b", "resnet56_b", "resnet18", "resnet50"])
def test_pool_reaches_every_budget_under_it(name: str) -> None:
    space = small_space(name)
    encoder = GraphEncoder.for_space(space)
    choices = _choices(space)
    full, floor = space.macs(), smallest_macs(space, choices)
    config = RankConfig(pool=1000, top_k=1)
    for target in (floor, 0.1 * full, 0.3 * full, 0.5 * full, 0.8 * full, full):
        if target < floor:
            continue
        pool = sample_pool(encoder, choices, target, 0.02, config)
        macs = encoder.macs(pool)
        assert bool((macs <= target).all()) and bool((macs >= 0.98 * target).all()), target
        assert len({tuple(r) for r in pool.tolist()}) == len(pool)
        if target == floor:  # the band under the smallest network holds only that network
            assert pool.tolist() == [[min(choices[u.name]) for u in space.units]]
        elif target < full:
            assert len(pool) == 1000, (name, target / full)
        else:  # as many as the band holds (few for the small spaces), with the full network
            found = [as_dict(encoder, r) for r in pool]
            assert len(pool) == 1000 or (len(pool) > 1 and space.full_widths() in found)


def _grid_under(sampler: WidthSampler, high: float) -> torch.Tensor:
    """Every assignment of the grid with MACs <= high: MACs grow with each width, so no unit
    goes beyond the widest choice it can take with all other units at their smallest."""
    units = len(sampler.counts)
    ranges = []
    for j in range(units):
        k = 0
        while k + 1 < int(sampler.counts[j]):
            index = torch.zeros(1, units, dtype=torch.int64)
            index[0, j] = k + 1
            if int(sampler.encoder.macs(sampler.widths(index))[0]) > high:
                break
            k += 1
        ranges.append(range(k + 1))
    assert math.prod(len(r) for r in ranges) <= 200_000  # small enough to enumerate
    return sampler.widths(torch.tensor(list(itertools.product(*ranges))))


@pytest.mark.parametrize(
    ("name", "factor"),
    [("resnet20", 1.2), ("resnet20", 1.3), ("resnet20_b", 1.2), ("resnet18", 1.2)],
)
def test_small_bands_near_the_smallest_network_are_sampled_completely(
    name: str, factor: float
) -> None:
    space = search_spaces.create(name)
    encoder = GraphEncoder.for_space(space)
    sampler = WidthSampler(encoder, _choices(space))
    high = factor * sampler.min_cost
    grid = _grid_under(sampler, high)
    macs = encoder.macs(grid)
    truth = {tuple(r) for r in grid[(macs >= 0.98 * high) & (macs <= high)].tolist()}
    found = sampler.sample(10_000, torch.Generator().manual_seed(0), band=(0.98 * high, high))
    assert {tuple(r) for r in found.tolist()} == truth and len(truth) >= 4


def test_small_bands_near_the_full_network_are_sampled_completely() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    choices = _choices(space)
    sampler = WidthSampler(encoder, choices)
    full = space.macs()
    # every assignment within 2 % of the full MACs has each unit among its 4 widest choices
    near = torch.tensor(list(itertools.product(range(4), repeat=len(space.units))))
    all_near = sampler.widths(sampler.counts - 1 - near)
    for ratio in (1.0, 0.99):
        low, high = 0.98 * ratio * full, ratio * full
        macs = encoder.macs(all_near)
        truth = {tuple(r) for r in all_near[(macs >= low) & (macs <= high)].tolist()}
        found = sampler.sample(10_000, torch.Generator().manual_seed(0), band=(low, high))
        assert {tuple(r) for r in found.tolist()} == truth and 10 < len(truth) < 100


@pytest.mark.parametrize(("name", "ratio"), [("resnet20", 0.3), ("resnet56_b", 0.8)])
def test_a_full_pool_at_budgets_rejection_sampling_missed(name: str, ratio: float) -> None:
    space = search_spaces.create(name)
    encoder = GraphEncoder.for_space(space)
    target = ratio * space.macs()
    pool = sample_pool(encoder, _choices(space), target, 0.02, RankConfig())
    assert pool.shape == (10_000, len(space.units))
    macs = encoder.macs(pool)
    assert bool((macs <= target).all() and (macs >= 0.98 * target).all())


def test_unreachable_pool_is_refused_naming_the_search_flags() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    choices = _choices(space)
    floor = smallest_macs(space, choices)
    # below the smallest network, and in a gap of the grid just above it
    for target in (0.99 * floor, 1.05 * floor):
        with pytest.raises(ConfigError) as err:
            sample_pool(encoder, choices, target, 0.02, RankConfig())
        message = str(err.value)
        assert "\n" not in message
        assert all(f in message for f in ("--target-macs", "--tolerance", "--width-ratios"))


def test_uniform_sampling_covers_the_choices() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    rows = sample_widths(encoder, _choices(space), 500, torch.Generator().manual_seed(1))
    assert len({tuple(r) for r in rows.tolist()}) == 500
    for j, unit in enumerate(space.units):
        assert set(rows[:, j].tolist()) == set(_choices(space)[unit.name])


def test_a_latency_pool_lies_in_the_latency_band_and_an_unreachable_one_is_refused() -> None:
    from nas.cost import LatencyCost
    from tests.conftest import synthetic_latency_table

    space = search_spaces.create("resnet20_b")
    encoder = GraphEncoder.for_space(space)
    cost = LatencyCost(space, table=synthetic_latency_table(space))
    choices = _choices(space)
    target = 0.5 * cost.full()
    pool = sample_pool(encoder, choices, target, 0.02, RankConfig(pool=500), cost=cost)
    assert len(pool) == 500 and len({tuple(r.tolist()) for r in pool}) == 500
    predicted = torch.tensor([cost.exact(as_dict(encoder, row)) for row in pool])
    assert bool((predicted <= target).all() and (predicted >= 0.98 * target).all())
    floor = cost.exact({u: min(c) for u, c in choices.items()})
    with pytest.raises(ConfigError, match="--target-latency") as err:
        sample_pool(encoder, choices, 0.9 * floor, 0.02, RankConfig(), cost=cost)
    assert "\n" not in str(err.value) and "ms in" in str(err.value)
