"""Weight-only criteria: filter L1 norm, BN scale, and the first channels.

* ``l1``: the L1 norm of each filter that writes the unit (Li et al. 2017);
* ``bn``: the absolute BN scale |gamma| of the unit's BN layers (network slimming);
* ``first``: no scoring, every channel equal: an order keeps the first channels.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from nas.importance.base import register_criterion, sum_over_writers
from search_spaces import SearchSpace

__all__: list[str] = []


@register_criterion("l1", description="L1 norm of each filter (Li et al. 2017)")
def l1(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None
) -> dict[str, Tensor]:
    def filter_l1(conv: nn.Module) -> Tensor:
        assert isinstance(conv, nn.Conv2d)
        return conv.weight.abs().flatten(1).sum(1)

    return sum_over_writers(model, space, "conv", filter_l1)


@register_criterion("bn", description="|gamma| of the BN after the conv (network slimming)")
def bn(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None
) -> dict[str, Tensor]:
    def scale(norm: nn.Module) -> Tensor:
        assert isinstance(norm, nn.BatchNorm2d)
        return norm.weight.abs()

    return sum_over_writers(model, space, "bn", scale)


@register_criterion("first", description="no scoring: keep the first channels")
def first(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None = None
) -> dict[str, Tensor]:
    return {u.name: torch.zeros(u.max_width) for u in space.units}
