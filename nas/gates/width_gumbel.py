"""``width-gumbel``: one logit vector per unit over its width choices, relaxed with
Gumbel-softmax (TAS)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.gates.base import GateStrategy, _mean_entropy, register_strategy
from nas.supernet import nested_masks
from search_spaces import SearchSpace

__all__ = ["WidthGumbel"]


@register_strategy("width-gumbel")
class WidthGumbel(GateStrategy):
    """One logit vector per unit over its width choices, relaxed with Gumbel-softmax (TAS).

    A choice keeps the first ``c`` channels (nested masks); the mask of a unit is the
    probability-weighted sum of the nested masks of its choices.
    """

    name = "width-gumbel"

    def __init__(
        self, space: SearchSpace, choices: Mapping[str, Sequence[int]], *, init_std: float = 1e-3
    ) -> None:
        super().__init__(space, choices)
        self.logits = nn.ParameterList(
            nn.Parameter(torch.randn(len(self.choices[u])) * init_std) for u in self.units
        )
        for i, u in enumerate(self.units):
            self.register_buffer(f"_nested_{i}", nested_masks(self.choices[u], space.max_widths[u]))
            self.register_buffer(f"_widths_{i}", torch.tensor(self.choices[u], dtype=torch.float))

    def _nested(self, i: int) -> Tensor:
        return self.get_buffer(f"_nested_{i}")

    def _widths(self, i: int) -> Tensor:
        return self.get_buffer(f"_widths_{i}")

    def _weights(self, logits: Tensor, mode: str, tau: float) -> Tensor:
        if mode in ("sample", "hard"):
            # Gumbel noise drawn as F.gumbel_softmax draws it; the hard sample is exactly one-hot
            # outside autograd (the argmax of logits + noise does not depend on tau) and
            # straight-through inside it
            perturbed = logits - torch.empty_like(logits).exponential_().log()
            soft = F.softmax(perturbed / tau, dim=-1)
            if mode == "sample":
                return soft
            hard = F.one_hot(perturbed.argmax(), logits.numel()).to(logits.dtype)
            return hard - soft.detach() + soft if torch.is_grad_enabled() else hard
        if mode == "relaxed":
            return F.softmax(logits / tau, dim=-1)
        return F.one_hot(logits.argmax(), logits.numel()).to(logits.dtype)

    def masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        return {
            u: self._weights(lg, mode, tau) @ self._nested(i)
            for i, (u, lg) in enumerate(zip(self.units, self.logits, strict=True))
        }

    def expected_widths(self) -> dict[str, Tensor]:
        return {
            u: F.softmax(lg, dim=-1) @ self._widths(i)
            for i, (u, lg) in enumerate(zip(self.units, self.logits, strict=True))
        }

    def entropy(self) -> Tensor:
        return _mean_entropy(
            {u: F.log_softmax(lg, dim=-1) for u, lg in zip(self.units, self.logits, strict=True)}
        )

    def choice_log_probs(self) -> dict[str, Tensor]:
        return {
            u: F.log_softmax(lg.detach(), dim=-1)
            for u, lg in zip(self.units, self.logits, strict=True)
        }
