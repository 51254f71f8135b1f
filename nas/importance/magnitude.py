"""Weight-only criteria: filter norms, geometric median, BN scale, random and the first channels.

* ``l1``: the L1 norm of each filter (conv or linear layer) that writes the unit (Li et al.
  2017: sum |W| of each output filter, nothing else of the coupled group; Torch-Pruning's
  default "magnitude" is a group L2 instead);
* ``l2``: the L2 norm of each filter;
* ``fpgm``: each filter's summed Euclidean distance to the other filters of its layer, on the
  raw weights as in He et al. 2019's code (filters near the geometric median are redundant:
  small score, cut first);
* ``bn``: the absolute BN scale |gamma| of the unit's BN layers (network slimming; train with
  ``nas train --bn-sparsity`` for the L1 penalty it assumes); a unit no BN normalises (a
  squeeze-excitation's inner width) is scored by ``l1``;
* ``random``: seeded random scores (``seed`` option), a control;
* ``uniform`` (and its older name ``first``): no scoring, every channel equal: an order keeps
  the first channels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from nas.importance.base import register_criterion, sum_over_writers
from search_spaces import SearchSpace

__all__: list[str] = []

WRITERS = ("conv", "linear")  # the layers whose filters (output rows) write a unit


@register_criterion("l1", description="L1 norm of each filter (Li et al. 2017)")
def l1(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None
) -> dict[str, Tensor]:
    def filter_l1(conv: nn.Module) -> Tensor:
        assert isinstance(conv, (nn.Conv2d, nn.Linear))
        return conv.weight.abs().flatten(1).sum(1)

    return sum_over_writers(model, space, WRITERS, filter_l1)


@register_criterion("l2", description="L2 norm of each filter")
def l2(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None
) -> dict[str, Tensor]:
    def filter_l2(conv: nn.Module) -> Tensor:
        assert isinstance(conv, (nn.Conv2d, nn.Linear))
        return conv.weight.flatten(1).norm(dim=1)

    return sum_over_writers(model, space, WRITERS, filter_l2)


@register_criterion("fpgm", description="distance of each filter to the others (He et al. 2019)")
def fpgm(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None
) -> dict[str, Tensor]:
    def distance_to_others(conv: nn.Module) -> Tensor:
        assert isinstance(conv, (nn.Conv2d, nn.Linear))
        w = conv.weight.detach().flatten(1).double()
        return torch.cdist(w, w).sum(1)

    return sum_over_writers(model, space, WRITERS, distance_to_others)


@register_criterion("random", description="seeded random scores (a control; option seed)")
def random(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None, seed: int = 0
) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {u.name: torch.rand(u.max_width, generator=g) for u in space.units}


@register_criterion("bn", description="|gamma| of the BN after the conv (network slimming)")
def bn(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None
) -> dict[str, Tensor]:
    def scale(norm: nn.Module) -> Tensor:
        assert isinstance(norm, nn.BatchNorm2d)
        return norm.weight.abs() if norm.affine else torch.ones(norm.num_features)

    scores = sum_over_writers(model, space, "bn", scale)
    unscaled = [u for u, s in scores.items() if not bool(s.any())]
    if unscaled:  # no BN normalises them (a squeeze-excitation's inner width): filter norms
        fallback = l1(model, space)
        scores.update({u: fallback[u] for u in unscaled})
    return scores


@register_criterion("uniform", description="no scoring: keep the first channels")
def uniform(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None
) -> dict[str, Tensor]:
    return {u.name: torch.zeros(u.max_width) for u in space.units}


register_criterion("first", description="no scoring: keep the first channels (= uniform)")(uniform)
