"""MACs (one multiply-add = 1) and parameters: the space's one formula, and a cross-check.

``count_macs``/``count_params`` are analytic: they evaluate the search space's layer table at the
spec's widths (microseconds, no model is built). ``measure_macs`` runs a model once under
``torch.utils.flop_counter.FlopCounterMode`` and halves its FLOPs: it is the independent
cross-check the tests hold the analytic count to. FLOPs, where reported, are 2 x MACs.
:class:`MacsCost` is the MAC cost model (registered as ``macs``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from nas.cost.base import COST_MODELS, CostModel
from nas.cost.knapsack import CostTerm
from search_spaces import SearchSpace, WidthSpec

__all__ = [
    "MacsCost",
    "count_macs",
    "count_model_params",
    "count_params",
    "mac_cost_terms",
    "measure_macs",
]


@COST_MODELS.register("macs", description="conv + linear multiply-accumulates, exact")
class MacsCost(CostModel):
    """Exact conv + linear MACs of one input (the space's formula)."""

    name = "macs"
    unit = "MACs"

    def terms(self) -> list[CostTerm]:
        return mac_cost_terms(self.space)

    def exact(self, widths: Mapping[str, int]) -> float:
        return float(self.space.macs(widths))

    def expected(self, widths: Mapping[str, Tensor]) -> Tensor:
        return self.space.expected_macs(widths)

    def batched(self, widths: Tensor) -> Tensor:
        return self.space.batched_macs(widths)


def mac_cost_terms(space: SearchSpace) -> list[CostTerm]:
    """The space's MAC formula as per-layer cost terms (for the dynamic program)."""

    def product(coefficient: int) -> Callable[[Tensor, Tensor], Tensor]:
        return lambda c_in, c_out: coefficient * c_in * c_out

    return [
        CostTerm(u_in, u_out, c_in, c_out, product(k))
        for k, u_in, u_out, c_in, c_out in space.mac_terms
    ]


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
