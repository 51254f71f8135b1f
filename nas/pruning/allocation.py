"""Allocation: from per-channel scores to widths under a MAC budget.

Every allocation returns widths whose exact MACs lie within ``target * (1 +- tolerance)`` (a
one-line :class:`ConfigError` where none can) and never cuts a unit below one channel. Which
channels are kept is the criterion's business (extraction keeps each unit's top-scored
channels); the allocation only decides how many.

* ``uniform``: the same ratio for every unit (the uniform widths of the target MACs);
* ``global``: channels ranked across all units by normalised score per MAC (a unit's scores are
  divided by their mean, so units compare on one scale; a channel's MAC cost is what removing it
  saves at the current widths), the lowest removed one at a time until the budget is met (a
  channel whose removal would fall below the band is passed over for the next one);
* ``greedy``: AutoSlim-style slimming: repeatedly cut, by one step of its width grid, the unit
  whose cut loses the least validation accuracy per MAC saved (``evaluate(widths)`` measures
  it, BN recalibrated), until the budget is met; the last cut is refined to land in the band;
* ``spec``: the widths of a given width spec (a search's ``arch.json``), checked against the
  space and the band.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import Tensor

from nas.cost import TargetBand
from nas.errors import ConfigError
from nas.registry import Registry
from search_spaces import SearchSpace, WidthSpec

__all__ = ["ALLOCATIONS", "Allocation", "allocate", "check_reachable", "marginal_macs"]

Evaluate = Callable[[Mapping[str, int]], float]  # widths -> validation accuracy


@dataclass(frozen=True)
class Budget(TargetBand):
    """The band the allocation must land in (the target in MACs)."""


Allocation = Callable[..., dict[str, int]]
ALLOCATIONS: Registry[Allocation] = Registry("allocation")


def allocate(
    name: str,
    space: SearchSpace,
    scores: Mapping[str, Tensor],
    target_macs: float,
    *,
    tolerance: float = 0.02,
    spec: WidthSpec | None = None,
    evaluate: Evaluate | None = None,
    step: float = 0.1,
) -> dict[str, int]:
    """Widths for ``space`` at ``target_macs`` (absolute MACs) by allocation ``name``.
    ``spec``: the widths for ``spec``; ``evaluate``: the validation accuracy of widths, for
    ``greedy`` (``step``: its cut, as a share of each unit's full width)."""
    allocation = ALLOCATIONS.get(name)
    budget = Budget(float(target_macs), tolerance)
    check_reachable(space, target_macs, tolerance)
    widths = allocation(space, scores, budget, spec=spec, evaluate=evaluate, step=step)
    got = space.macs(widths)
    if not budget.low <= got <= budget.high:
        raise ConfigError(
            f"allocation {name!r} found no widths within {tolerance:g} of {target_macs:,.0f} "
            f"MACs (nearest: {got:,}); widen --tolerance"
        )
    return widths


def check_reachable(space: SearchSpace, target_macs: float, tolerance: float) -> None:
    """A one-line :class:`ConfigError` where ``target_macs`` (with its tolerance) lies below
    the smallest network of ``space`` (every unit at one channel)."""
    smallest = space.macs(dict(space.granularity))
    if target_macs * (1 + tolerance) < smallest:
        raise ConfigError(
            f"target {target_macs:,.0f} MACs is below the smallest {space.name} "
            f"({smallest:,} MACs, {smallest / space.macs():.1%} of full, every unit at one "
            "channel or group)"
        )


@ALLOCATIONS.register("uniform", description="the same ratio for every unit")
def _uniform(
    space: SearchSpace, scores: Mapping[str, Tensor], budget: Budget, **unused: object
) -> dict[str, int]:
    return space.uniform_widths_for_macs(min(1.0, budget.target / space.macs()))


@ALLOCATIONS.register("spec", description="the widths of a given width spec (--arch)")
def _spec(
    space: SearchSpace,
    scores: Mapping[str, Tensor],
    budget: Budget,
    *,
    spec: WidthSpec | None = None,
    **unused: object,
) -> dict[str, int]:
    if spec is None:
        raise ConfigError("allocation 'spec' needs a width spec (--arch arch.json)")
    if spec.space != space.name:
        raise ConfigError(f"the width spec is for space {spec.space}, not {space.name}")
    return space.check_widths(dict(spec.widths))


def marginal_macs(space: SearchSpace, widths: Mapping[str, int]) -> dict[str, int]:
    """Per unit, the MACs saved by removing one step of its channels at ``widths``: one
    channel, or one group where a grouped convolution reads the unit (the formula is bilinear
    in the widths, so this is exact for one unit's step)."""
    step = space.granularity
    saved = {u.name: 0 for u in space.units}
    for k, u_in, u_out, c_in, c_out in space.mac_terms:
        w_in = widths[u_in] if u_in is not None else c_in
        w_out = widths[u_out] if u_out is not None else c_out
        if u_in is not None and u_in == u_out:
            g = step[u_in]
            saved[u_in] += k * (w_in * w_out - (w_in - g) * (w_out - g))
            continue
        if u_in is not None:
            saved[u_in] += k * w_out * step[u_in]
        if u_out is not None:
            saved[u_out] += k * w_in * step[u_out]
    return saved


@ALLOCATIONS.register("global", description="channels ranked across units by score per MAC")
def _global(
    space: SearchSpace, scores: Mapping[str, Tensor], budget: Budget, **unused: object
) -> dict[str, int]:
    widths = space.full_widths()
    # each unit's scores on one scale (mean 1), weakest first
    ranked = {}
    for u in space.units:
        s = scores[u.name].double()
        ranked[u.name] = sorted((s / s.mean().clamp_min(1e-12)).tolist())
    macs = space.macs(widths)
    while macs > budget.target:
        saved = marginal_macs(space, widths)
        candidates = []
        for u in space.units:
            w, g = widths[u.name], u.granularity
            if w <= g or macs - saved[u.name] < budget.low:  # the floor, or past the band
                continue
            cut = len(ranked[u.name]) - w  # channels of this unit already removed
            candidates.append((sum(ranked[u.name][cut : cut + g]) / max(saved[u.name], 1), u.name))
        if not candidates:  # every cut would leave the band: stop (checked by the caller)
            break
        best = min(candidates)[1]
        widths[best] -= space.granularity[best]
        macs -= saved[best]
    return widths


@ALLOCATIONS.register("greedy", description="cut the unit losing least accuracy per MAC")
def _greedy(
    space: SearchSpace,
    scores: Mapping[str, Tensor],
    budget: Budget,
    *,
    evaluate: Evaluate | None = None,
    step: float = 0.1,
    **unused: object,
) -> dict[str, int]:
    if evaluate is None:
        raise ConfigError("allocation 'greedy' measures validation accuracy: it needs data")
    widths = space.full_widths()
    maximum = space.max_widths
    accuracy = evaluate(widths)
    macs = space.macs(widths)
    while macs > budget.high:
        options: list[tuple[float, str, dict[str, int], float, int]] = []
        for u in space.units:
            g = u.granularity  # whole groups of a grouped convolution
            cut = g * max(1, round(step * maximum[u.name] / g))
            if widths[u.name] - cut < g:
                cut = widths[u.name] - g
            if cut <= 0:
                continue
            trial = {**widths, u.name: widths[u.name] - cut}
            trial_macs = space.macs(trial)
            if trial_macs < budget.low:  # overshoots: refine this cut into the band
                trial = _refined(space, widths, u.name, budget)
                trial_macs = space.macs(trial)
                if trial == widths:
                    continue
            acc = evaluate(trial)
            cost = (accuracy - acc) / max(macs - trial_macs, 1)
            options.append((cost, u.name, trial, acc, trial_macs))
        if not options:
            break
        _, _, widths, accuracy, macs = min(options, key=lambda o: (o[0], o[1]))
    return widths


def _refined(
    space: SearchSpace, widths: Mapping[str, int], unit: str, budget: Budget
) -> dict[str, int]:
    """``widths`` with ``unit`` cut as far as the band allows (not below it)."""
    best = dict(widths)
    g = space.granularity[unit]
    for w in range(widths[unit] - g, 0, -g):
        trial = {**widths, unit: w}
        if space.macs(trial) < budget.low:
            break
        best = trial
    return best
