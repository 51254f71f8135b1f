"""Projection of found widths onto the budget: the exact cost (MACs, or a table's latency;
:class:`~nas.cost.CostModel`) within the tolerance band (:data:`PROJECTIONS`).

* ``dp`` (the default): the most probable widths in the band, by dynamic programming over the
  units' choices (:func:`nas.cost.knapsack.most_probable_in_band`): maximise the total
  log-probability of the chosen widths. Widths already in the band stay where they are.
* ``greedy``: the previous release's projection, kept to compare with: from the argmax widths,
  repeatedly move the unit whose next choice loses the least log-probability per unit of cost.

Where the width choices are too coarse for the band, both fall back to setting one or two
units to integer widths off the choices that land in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from nas.cost.base import CostModel
from nas.cost.knapsack import most_probable_in_band
from nas.errors import ConfigError
from nas.registry import Registry

__all__ = ["PROJECTIONS", "project_most_probable", "project_to_budget"]

Projection = Callable[
    [
        CostModel,
        Mapping[str, int],
        Mapping[str, Sequence[int]],
        Mapping[str, Tensor],
        float,
        float,
    ],
    dict[str, int],
]
PROJECTIONS: Registry[Projection] = Registry("projection")


@PROJECTIONS.register("dp")
def project_most_probable(
    cost: CostModel,
    widths: Mapping[str, int],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
    target: float,
    tolerance: float = 0.02,
) -> dict[str, int]:
    """The most probable widths (total log-probability of the choices) whose exact cost is
    within ``target * (1 +- tolerance)``; ``widths`` (the argmax) only serve the fallback."""
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    units = [(u.name, u.kind) for u in cost.space.units]
    found = most_probable_in_band(cost.terms(), units, choices, log_probs, lo, hi)
    if found is not None:
        return found
    return project_to_budget(cost, widths, choices, log_probs, target, tolerance)


@PROJECTIONS.register("greedy")
def project_to_budget(
    cost: CostModel,
    widths: Mapping[str, int],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
    target: float,
    tolerance: float = 0.02,
) -> dict[str, int]:
    """Adjust ``widths`` until their exact cost is within ``target * (1 +- tolerance)``.

    Greedy over the width choices: while over the band, shrink the unit whose next smaller
    choice loses the least log-probability per unit of cost saved; while under it, grow the unit
    whose next larger choice costs the least log-probability per unit of cost added without
    overshooting. If the choices are too coarse to land in the band, one unit is set to the
    integer width that does (every width of every unit tried), or, where no single unit can,
    two units together (MACs are bilinear in two units' widths; a latency nearly so, and every
    candidate is checked with the exact cost).
    :data:`nas.width_search.config.MIN_TOLERANCE` is the narrowest band a search accepts.
    """
    w = dict(widths)
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    for _ in range(10_000):
        now = cost.exact(w)
        if lo <= now <= hi:
            return w
        step = _best_step(cost, w, choices, log_probs, shrink=now > hi, limit=hi)
        if step is None:
            break
        w[step[0]] = step[1]
    return _fine_adjust(cost, w, target, lo, hi)


def _best_step(
    cost: CostModel,
    w: Mapping[str, int],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
    *,
    shrink: bool,
    limit: float,
) -> tuple[str, int] | None:
    now = cost.exact(w)
    best: tuple[float, str, int] | None = None
    for unit, options in choices.items():
        k = _index_at_or_near(options, w[unit], below=shrink)
        k_new = k - 1 if shrink else k + 1
        if not 0 <= k_new < len(options):
            continue
        trial = cost.exact({**w, unit: options[k_new]})
        delta = abs(trial - now)
        if delta == 0 or (not shrink and trial > limit):
            continue
        lp = log_probs[unit]
        loss = float(lp[min(k, len(lp) - 1)] - lp[k_new]) / delta
        if best is None or loss < best[0]:
            best = (loss, unit, options[k_new])
    return None if best is None else (best[1], best[2])


def _index_at_or_near(options: Sequence[int], width: int, *, below: bool) -> int:
    """Index of ``width`` in ``options``; for a width between choices, the neighbour on the
    side we move away from."""
    if width in options:
        return list(options).index(width)
    above = [i for i, o in enumerate(options) if o > width]
    if below:
        return above[0] if above else len(options)
    return above[0] - 1 if above else len(options) - 1


def _fine_adjust(
    cost: CostModel, w: dict[str, int], target: float, lo: float, hi: float
) -> dict[str, int]:
    """Land in ``[lo, hi]`` by setting one unit to an integer width off the choices (every width
    of every unit priced at once) or, when no single unit can, two units."""
    space = cost.space
    names = [u.name for u in space.units]
    base = torch.tensor([w[u] for u in names], dtype=torch.float64)
    best: tuple[float, str, int] | None = None
    for i, unit in enumerate(names):
        maximum = space.max_widths[unit]
        rows = base.repeat(maximum, 1)
        rows[:, i] = torch.arange(1, maximum + 1, dtype=torch.float64)
        values = cost.batched(rows)
        inside = torch.nonzero((values >= lo) & (values <= hi)).flatten()
        if len(inside) == 0:
            continue
        widths = inside + 1
        k = int((widths - w[unit]).abs().argmin())
        change = abs(int(widths[k]) - w[unit]) / maximum
        if best is None or change < best[0]:
            best = (change, unit, int(widths[k]))
    if best is not None:
        return {**w, best[1]: best[2]}
    pair = _pair_adjust(cost, w, target, lo, hi)
    if pair is None:
        raise ConfigError(
            f"no widths reach a cost of {target:,.6g} {cost.unit} within the tolerance"
        )
    return pair


def _pair_adjust(
    cost: CostModel, w: dict[str, int], target: float, lo: float, hi: float
) -> dict[str, int] | None:
    """Two units ``a``, ``b`` changed together: every width of ``a``, and for each the integer
    width of ``b`` closest to the target (MACs are bilinear in two units' widths; a latency
    nearly so); the smallest relative change that lands in the band, checked with the exact
    cost."""
    space = cost.space
    best: tuple[float, dict[str, int]] | None = None
    units = list(space.max_widths)
    for a in units:
        wa = torch.arange(1, space.max_widths[a] + 1, dtype=torch.float64)
        for b in units:
            if a == b:
                continue
            f00, f10, f01, f11 = (
                cost.exact({**w, a: i, b: j}) for i, j in ((0, 0), (1, 0), (0, 1), (1, 1))
            )
            rest = f00 + (f10 - f00) * wa  # MACs with b at 0
            slope = (f01 - f00) + (f11 - f10 - f01 + f00) * wa  # per channel of b
            if not bool((slope > 0).any()):
                continue
            wb = ((target - rest) / slope.clamp(min=1.0)).round().clamp(1, space.max_widths[b])
            macs = rest + slope * wb
            change = (wa - w[a]).abs() / space.max_widths[a] + (wb - w[b]).abs() / (
                space.max_widths[b]
            )
            ok = (macs >= lo) & (macs <= hi) & (slope > 0)
            if not bool(ok.any()):
                continue
            k = int(torch.where(ok, change, torch.inf).argmin())
            trial = {**w, a: int(wa[k]), b: int(wb[k])}
            if (best is None or float(change[k]) < best[0]) and lo <= cost.exact(trial) <= hi:
                best = (float(change[k]), trial)
    return None if best is None else best[1]
