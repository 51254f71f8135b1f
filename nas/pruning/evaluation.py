"""Validation accuracy of candidate widths, for the ``greedy`` allocation.

The full network is copied, its channels permuted into the criterion's order (function
preserving), and wrapped as a supernet: widths ``w`` keep each unit's first ``w`` channels, that
is its ``w`` best-scored ones, exactly the network extraction would cut. Before each evaluation
the BN statistics are re-estimated on a few fixed training batches for exactly those widths
(AutoSlim's rule), then accuracy is measured on a few fixed validation batches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from nas.engine import evaluate
from nas.extraction import permute_channels
from nas.supernet import Supernet, recalibrate_bn, take_batches
from search_spaces import SearchSpace

__all__ = ["masked_accuracy"]


def masked_accuracy(
    model: nn.Module,
    space: SearchSpace,
    order: Mapping[str, Tensor],
    train: Iterable[Any],
    val: Iterable[Any],
    *,
    calibration_batches: int = 4,
    val_batches: int = 4,
) -> Callable[[Mapping[str, int]], float]:
    """``evaluate(widths) -> validation accuracy (%)`` of ``model`` cut to ``widths`` with the
    channels of ``order`` (BN recalibrated for each widths). ``model`` is not changed."""
    net = copy.deepcopy(model).eval()
    permute_channels(net, space, dict(order))
    supernet = Supernet(net, space)
    device = next(net.parameters()).device
    calibration = take_batches(train, calibration_batches)
    held_out = take_batches(val, val_batches)

    @torch.no_grad()
    def accuracy(widths: Mapping[str, int]) -> float:
        supernet.set_widths(widths)
        recalibrate_bn(supernet, calibration, device)
        result = evaluate(supernet, held_out, device=device).accuracy
        supernet.set_masks(None)
        return result

    return accuracy
