"""Compute and size of a network: MACs (one multiply-add = 1) and parameters.

``count_macs``/``count_params`` are analytic: they evaluate the search space's layer table at the
spec's widths (microseconds, no model is built). ``measure_macs`` runs a model once under
``torch.utils.flop_counter.FlopCounterMode`` and halves its FLOPs: it is the independent
cross-check the tests hold the analytic count to. FLOPs, where reported, are 2 x MACs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from search_spaces import WidthSpec


def count_macs(spec: WidthSpec) -> int:
    """Exact conv + linear MACs of one forward pass of one input at the spec's widths."""
    return spec.get_space().macs(spec.widths)


def count_params(spec: WidthSpec) -> int:
    """Exact trainable parameters (conv/linear weights and biases, BN scale and shift)."""
    return spec.get_space().params(spec.widths)


@torch.no_grad()
def measure_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one forward pass measured by FlopCounterMode (conv + matmul FLOPs / 2).

    ``input_shape`` is (C, H, W); the count is for a batch of one.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, *input_shape, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops()) // 2


def count_model_params(model: nn.Module) -> int:
    """Number of trainable parameters of a built model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
