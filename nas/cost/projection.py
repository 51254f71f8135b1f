"""Projection of found widths onto the budget: exact MACs within the tolerance band
(:data:`PROJECTIONS`).

* ``dp`` (the default): the most probable widths in the band, by dynamic programming over the
  units' choices (:func:`nas.cost.knapsack.most_probable_in_band`): maximise the total
  log-probability of the chosen widths. Widths already in the band stay where they are.
* ``greedy``: the previous release's projection, kept to compare with: from the argmax widths,
  repeatedly move the unit whose next choice loses the least log-probability per MAC.

Where the width choices are too coarse for the band, both fall back to setting one or two
units to integer widths off the choices that land in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from nas.cost.knapsack import CostTerm, most_probable_in_band
from nas.errors import ConfigError
from nas.registry import Registry
from search_spaces import SearchSpace

__all__ = ["PROJECTIONS", "mac_cost_terms", "project_most_probable", "project_to_budget"]

Projection = Callable[
    [
        SearchSpace,
        Mapping[str, int],
        Mapping[str, Sequence[int]],
        Mapping[str, Tensor],
        float,
        float,
    ],
    dict[str, int],
]
PROJECTIONS: Registry[Projection] = Registry("projection")


def mac_cost_terms(space: SearchSpace) -> list[CostTerm]:
    """The space's MAC formula as per-layer cost terms (for the dynamic program)."""

    def product(coefficient: int) -> Callable[[Tensor, Tensor], Tensor]:
        return lambda c_in, c_out: coefficient * c_in * c_out

    return [
        CostTerm(u_in, u_out, c_in, c_out, product(k))
        for k, u_in, u_out, c_in, c_out in space.mac_terms
    ]


@PROJECTIONS.register("dp")
def project_most_probable(
    space: SearchSpace,
    widths: Mapping[str, int],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
    target: float,
    tolerance: float = 0.02,
) -> dict[str, int]:
    """The most probable widths (total log-probability of the choices) whose exact MACs are
    within ``target * (1 +- tolerance)``; ``widths`` (the argmax) only serve the fallback."""
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    units = [(u.name, u.kind) for u in space.units]
    found = most_probable_in_band(mac_cost_terms(space), units, choices, log_probs, lo, hi)
    if found is not None:
        return found
    return project_to_budget(space, widths, choices, log_probs, target, tolerance)


@PROJECTIONS.register("greedy")
def project_to_budget(
    space: SearchSpace,
    widths: Mapping[str, int],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
    target: float,
    tolerance: float = 0.02,
) -> dict[str, int]:
    """Adjust ``widths`` until their exact MACs are within ``target * (1 +- tolerance)``.

    Greedy over the width choices: while over the band, shrink the unit whose next smaller
    choice loses the least log-probability per MAC saved; while under it, grow the unit whose
    next larger choice costs the least log-probability per MAC added without overshooting.
    If the choices are too coarse to land in the band, one unit is set to the integer width
    that does (MACs are affine in each single unit's width), or, where no single unit can, two
    units together (bilinear in two units' widths).
    :data:`nas.width_search.config.MIN_TOLERANCE` is the narrowest band a search accepts.
    """
    w = dict(widths)
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    for _ in range(10_000):
        macs = space.macs(w)
        if lo <= macs <= hi:
            return w
        step = _best_step(space, w, choices, log_probs, shrink=macs > hi, limit=hi)
        if step is None:
            break
        w[step[0]] = step[1]
    return _fine_adjust(space, w, target, lo, hi)


def _best_step(
    space: SearchSpace,
    w: Mapping[str, int],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
    *,
    shrink: bool,
    limit: float,
) -> tuple[str, int] | None:
    macs = space.macs(w)
    best: tuple[float, str, int] | None = None
    for unit, options in choices.items():
        k = _index_at_or_near(options, w[unit], below=shrink)
        k_new = k - 1 if shrink else k + 1
        if not 0 <= k_new < len(options):
            continue
        trial = {**w, unit: options[k_new]}
        delta = abs(space.macs(trial) - macs)
        if delta == 0 or (not shrink and space.macs(trial) > limit):
            continue
        lp = log_probs[unit]
        cost = float(lp[min(k, len(lp) - 1)] - lp[k_new]) / delta
        if best is None or cost < best[0]:
            best = (cost, unit, options[k_new])
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
    space: SearchSpace, w: dict[str, int], target: float, lo: float, hi: float
) -> dict[str, int]:
    """Land in ``[lo, hi]`` by setting one unit to an integer width off the choices or, when no
    single unit can (its MAC step wider than the band, or it is at its limit), two units."""
    best: tuple[float, str, int] | None = None
    for unit, maximum in space.max_widths.items():
        base = space.macs({**w, unit: 0})
        slope = space.macs({**w, unit: 1}) - base
        if slope <= 0:
            continue
        width = min(maximum, max(1, round((target - base) / slope)))
        macs = base + slope * width
        if lo <= macs <= hi:
            change = abs(width - w[unit]) / maximum
            if best is None or change < best[0]:
                best = (change, unit, width)
    if best is not None:
        return {**w, best[1]: best[2]}
    pair = _pair_adjust(space, w, target, lo, hi)
    if pair is None:
        raise ConfigError(f"no widths reach {target:,.0f} MACs within the tolerance")
    return pair


def _pair_adjust(
    space: SearchSpace, w: dict[str, int], target: float, lo: float, hi: float
) -> dict[str, int] | None:
    """Two units ``a``, ``b`` changed together: every width of ``a``, and for each the integer
    width of ``b`` closest to the target (MACs are bilinear in two units' widths); the
    smallest relative change that lands in the band, checked with the exact count."""
    best: tuple[float, dict[str, int]] | None = None
    units = list(space.max_widths)
    for a in units:
        wa = torch.arange(1, space.max_widths[a] + 1, dtype=torch.float64)
        for b in units:
            if a == b:
                continue
            f00, f10, f01, f11 = (
                float(space.macs({**w, a: i, b: j})) for i, j in ((0, 0), (1, 0), (0, 1), (1, 1))
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
            if (best is None or float(change[k]) < best[0]) and lo <= space.macs(trial) <= hi:
                best = (float(change[k]), trial)
    return None if best is None else best[1]
