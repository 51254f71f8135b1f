"""Channel-importance criteria: per-unit channel scores (higher = keep), and channel orders.

A criterion is registered in :data:`CRITERIA` as a function ``score(model, space, data)`` that
returns, for every unit of ``space``, one score per channel of the full network ``model``
(``data``: batches for criteria that look at activations; None for weight-only ones).

**Coupled units.** A unit written by several layers (a residual stream: the stem, the projection
shortcut and the last conv of every block of a stage) gets the sum of its writers' scores, each
writer's scores divided by their mean first (:func:`sum_over_writers`), so that every writer
counts equally whatever its scale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nas.errors import ConfigError
from nas.registry import Registry
from search_spaces import Layer, SearchSpace

__all__ = [
    "CRITERIA",
    "Criterion",
    "channel_order",
    "channel_scores",
    "combine_writers",
    "sum_over_writers",
    "writers",
]

# score(model, space, data, **options) -> {unit: per-channel scores}
Score = Callable[..., dict[str, Tensor]]


@dataclass(frozen=True)
class Criterion:
    """A registered criterion: its scoring function and whether it needs data."""

    name: str
    score: Score
    needs_data: bool = False


CRITERIA: Registry[Criterion] = Registry("channel-importance criterion")


def register_criterion(
    name: str, *, needs_data: bool = False, description: str = ""
) -> Callable[[Score], Score]:
    """Register ``score(model, space, data) -> {unit: scores}`` under ``name``."""

    def add(score: Score) -> Score:
        CRITERIA.register(name, Criterion(name, score, needs_data), description=description)
        return score

    return add


@torch.no_grad()
def channel_scores(
    model: nn.Module,
    space: SearchSpace,
    criterion: str,
    data: Iterable[Any] | None = None,
    **options: Any,
) -> dict[str, Tensor]:
    """Per unit, the score of each channel under ``criterion`` (higher = more important).
    ``data``: batches ``(x, y)`` for the criteria that look at activations (a one-line
    :class:`ConfigError` without them); ``options`` go to the criterion (e.g. ``seed`` for
    ``random``, ``images`` for ``chip`` and ``hrel``). The model is scored in eval mode and left
    in the mode it was in."""
    entry = CRITERIA.get(criterion)
    if entry.needs_data and data is None:
        raise ConfigError(f"criterion {criterion!r} looks at activations: it needs data")
    was_training = model.training
    model.eval()
    try:
        scores = entry.score(model, space, data, **options)
    finally:
        model.train(was_training)
    missing = [u.name for u in space.units if u.name not in scores]
    assert not missing, f"criterion {criterion} gave no scores for {missing}"
    return {
        u.name: _whole_groups(scores[u.name].detach().float().cpu(), u.granularity)
        for u in space.units
    }


def _whole_groups(scores: Tensor, granularity: int) -> Tensor:
    """Every channel of a group (a grouped convolution's, kept or dropped whole) scored by the
    group's mean: orders then keep groups whole and in place."""
    if granularity == 1:
        return scores
    return scores.view(-1, granularity).mean(1).repeat_interleave(granularity)


@torch.no_grad()
def channel_order(
    model: nn.Module,
    space: SearchSpace,
    criterion: str = "l1",
    data: Iterable[Any] | None = None,
    **options: Any,
) -> dict[str, Tensor]:
    """Per unit, the channel indices sorted from most to least important (ties keep their
    index order)."""
    scores = channel_scores(model, space, criterion, data, **options)
    return {u: torch.argsort(s, descending=True, stable=True) for u, s in scores.items()}


def sum_over_writers(
    model: nn.Module,
    space: SearchSpace,
    kind: str | tuple[str, ...],
    score: Callable[[nn.Module], Tensor],
) -> dict[str, Tensor]:
    """Per unit, the sum over the layers of ``kind`` (``conv``, ``linear``, ``bn`` or a tuple
    of them) that write it of ``score(layer module)``, each divided by its mean (the coupling
    rule above)."""
    modules = dict(model.named_modules())
    return combine_writers(space, {la.name: score(modules[la.name]) for la in writers(space, kind)})


def combine_writers(space: SearchSpace, per_layer: dict[str, Tensor]) -> dict[str, Tensor]:
    """The coupling rule on per-layer scores ``{layer name: scores of its output channels}``:
    per unit, the sum of its writers' scores, each divided by its mean first. A BN over a
    concatenation of several units gives each unit its slice."""
    scores = {u.name: torch.zeros(u.max_width) for u in space.units}
    for layer in space.layers:
        if layer.name not in per_layer:
            continue
        s = per_layer[layer.name].detach().float().cpu()
        for unit, part in _written(layer, s):
            scores[unit] += part / part.mean().clamp_min(1e-12)
    return scores


def _written(layer: Layer, s: Tensor) -> list[tuple[str, Tensor]]:
    """(unit, its scores) of the channels ``layer`` writes: a BN's segments, a conv's or linear
    layer's output unit."""
    if layer.kind != "bn":
        return [(layer.out_unit, s)] if layer.out_unit is not None else []
    return [(unit, s[start:end]) for unit, start, end in layer.unit_ranges()]


def writers(space: SearchSpace, kind: str | tuple[str, ...]) -> list[Layer]:
    """The layers of ``kind`` (one, or a tuple) that write a unit, in forward order; a BN
    writes the units of its channels."""
    kinds = (kind,) if isinstance(kind, str) else kind
    return [
        la
        for la in space.layers
        if la.kind in kinds
        and (la.out_unit is not None or (la.kind == "bn" and any(s.unit for s in la.inputs)))
    ]
