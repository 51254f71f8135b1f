"""Budget losses: how the search is pushed toward the MAC target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from search_spaces import SearchSpace

__all__ = ["budget_loss", "smallest_macs"]


def budget_loss(
    expected_macs: Tensor, discrete_macs: float, target: float, band: float = 0.05
) -> Tensor:
    """TAS's budget loss on ``log E[MACs]``: push down while the discrete network is over the
    target, up while it is more than ``band`` under it, and leave it alone in between."""
    log_ratio = torch.log(expected_macs / target)
    if discrete_macs > target:
        return log_ratio
    if discrete_macs < target * (1.0 - band):
        return -log_ratio
    return log_ratio * 0.0


def smallest_macs(space: SearchSpace, choices: Mapping[str, Sequence[int]]) -> int:
    """MACs of the smallest network the width choices allow."""
    return space.macs({u: min(c) for u, c in choices.items()})
