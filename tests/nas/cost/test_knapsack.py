"""nas.cost.knapsack: the most probable widths in a cost band, against enumeration."""

from __future__ import annotations

import itertools

import pytest
import torch

import search_spaces
from nas.cost.knapsack import most_probable_in_band
from nas.cost.macs import mac_cost_terms
from search_spaces import SearchSpace


def grid(space: SearchSpace, ratios: tuple[float, ...]) -> dict[str, list[int]]:
    return {u.name: sorted({max(1, round(r * u.max_width)) for r in ratios}) for u in space.units}


def enumerate_best(
    space: SearchSpace,
    choices: dict[str, list[int]],
    log_probs: dict[str, torch.Tensor],
    lo: float,
    hi: float,
) -> tuple[float, dict[str, int]] | None:
    """The answer by brute force: every assignment of the choices."""
    names = [u.name for u in space.units]
    index = torch.tensor(list(itertools.product(*(range(len(choices[u])) for u in names))))
    widths = torch.stack([torch.tensor(choices[u])[index[:, j]] for j, u in enumerate(names)], 1)
    macs = space.batched_macs(widths)
    total = sum(log_probs[u].double()[index[:, j]] for j, u in enumerate(names))
    assert isinstance(total, torch.Tensor)
    inside = (macs >= lo) & (macs <= hi)
    if not bool(inside.any()):
        return None
    best = int(torch.where(inside, total, torch.tensor(-torch.inf, dtype=total.dtype)).argmax())
    return float(total[best]), {u: int(widths[best, j]) for j, u in enumerate(names)}


@pytest.mark.parametrize(
    ("name", "ratios"),
    [
        ("resnet20", (0.25, 0.5, 0.75, 1.0)),
        pytest.param("resnet20_b", (0.34, 0.67, 1.0), marks=pytest.mark.slow),  # 3^12 to enumerate
    ],
)
@pytest.mark.parametrize("seed", range(4))
def test_the_most_probable_assignment_in_the_band_as_enumeration_finds_it(
    name: str, ratios: tuple[float, ...], seed: int
) -> None:
    space = search_spaces.create(name)
    choices = grid(space, ratios)
    g = torch.Generator().manual_seed(seed)
    log_probs = {
        u: torch.log_softmax(torch.randn(len(c), generator=g, dtype=torch.float64) * 2, 0)
        for u, c in choices.items()
    }
    target = (0.25 + 0.5 * torch.rand(1, generator=g).item()) * space.macs()
    lo, hi = 0.98 * target, 1.02 * target
    units = [(u.name, u.kind) for u in space.units]
    found = most_probable_in_band(mac_cost_terms(space), units, choices, log_probs, lo, hi)
    expected = enumerate_best(space, choices, log_probs, lo, hi)
    if expected is None:
        assert found is None
        return
    assert found is not None and lo <= space.macs(found) <= hi
    value = sum(float(log_probs[u][choices[u].index(w)]) for u, w in found.items())
    assert value == pytest.approx(expected[0], abs=1e-9)


def test_a_hand_checkable_case() -> None:
    """Option A, two choices (half or full) for the units of the blocks that keep their stage's
    resolution, the others fixed at full width: halving any one of them saves the same MACs
    (9 * H * W * C_stream * C/2 * 2 is equal in every stage), so a band around "all full but
    one unit halved" holds exactly those seven networks: the most probable halves the unit
    least sure of its full width."""
    space = search_spaces.create("resnet20")
    choices = {
        u.name: [u.max_width]
        if u.name in ("layer2.0.conv1", "layer3.0.conv1")
        else [u.max_width // 2, u.max_width]
        for u in space.units
    }
    margins = {u.name: 2.0 + i for i, u in enumerate(space.units)}
    unsure = space.units[5].name
    margins[unsure] = 0.5
    log_probs = {
        u: torch.log_softmax(torch.tensor([0.0, m], dtype=torch.float64), 0)[-len(choices[u]) :]
        for u, m in margins.items()
    }
    full = space.macs()
    saving = full - space.macs({**space.full_widths(), unsure: choices[unsure][0]})
    assert all(
        full - space.macs({**space.full_widths(), u: c[0]}) == saving
        for u, c in choices.items()
        if len(c) == 2
    )
    units = [(u.name, u.kind) for u in space.units]
    lo, hi = full - saving * 1.1, full - saving * 0.9
    found = most_probable_in_band(mac_cost_terms(space), units, choices, log_probs, lo, hi)
    assert found == {**space.full_widths(), unsure: choices[unsure][0]}


def test_no_assignment_in_the_band_is_none() -> None:
    space = search_spaces.create("resnet20")
    choices = {u.name: [u.max_width] for u in space.units}  # the full network only
    log_probs = {u: torch.zeros(1) for u in choices}
    units = [(u.name, u.kind) for u in space.units]
    terms = mac_cost_terms(space)
    assert most_probable_in_band(terms, units, choices, log_probs, 1.0, 2.0) is None
