"""Budget losses: how the architecture step is pushed toward the cost target (:data:`BUDGETS`).

Each works on the ratio of the expected cost to the target, ``r = E[cost] / target``, so its
scale does not depend on the network's size:

* ``lagrangian`` (the default): the loss ``(lam + budget_weight * v) * (r - 1)`` with the
  violation ``v = (1 - c) * (r - 1) + c * (a - 1)``, where ``a`` is the argmax network's cost
  ratio and ``c`` the confidence of the width distributions (the mean largest probability),
  and a Lagrange multiplier ``lam += budget_lr * v`` raised by dual ascent while the network is
  over the target and lowered while it is under (after every architecture step). While the
  distributions are flat the expected cost leads; as they decide, the argmax network (the one
  delivered) takes over, so it lands on the target by itself. The multiplier integrates the
  violation, the proportional part answers it at once (a PI controller): the budget weighs only
  as much as it must to balance the cross-entropy's pull toward wider networks, so the accuracy
  signal is never scaled away, and no sign is flipped from step to step;
* ``penalty``: ``budget_weight * (r - 1)^2``, smooth and two-sided, no state;
* ``tas``: the previous release's rule (TAS): ``+budget_weight * log r`` while the argmax
  network is over the target, ``-budget_weight * log r`` while it is more than ``budget_band``
  under, nothing in between. Kept to compare with.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from nas.registry import Registry
from search_spaces import SearchSpace

__all__ = ["BUDGETS", "Budget", "budget_loss", "create_budget", "smallest_macs"]


class Budget(abc.ABC):
    """A budget loss; ``update`` is called after every architecture step."""

    name: ClassVar[str] = ""

    def __init__(self, *, weight: float, lr: float, band: float) -> None:
        self.weight, self.lr, self.band = weight, lr, band

    @abc.abstractmethod
    def loss(self, ratio: Tensor, argmax_ratio: float) -> Tensor:
        """The loss at the expected cost ratio ``ratio`` (differentiable) given the argmax
        network's ratio."""

    def update(  # noqa: B027  (most budgets have no state)
        self, ratio: float, argmax_ratio: float, confidence: float
    ) -> None:
        """After an architecture step: the expected cost ratio, the argmax network's, and the
        confidence of the width distributions (mean largest probability)."""

    @property
    def multiplier(self) -> float:
        """What the budget currently weighs (recorded per epoch)."""
        return self.weight

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: B027
        """Restore :meth:`state_dict`."""


BUDGETS: Registry[type[Budget]] = Registry("budget")


@BUDGETS.register("lagrangian")
class Lagrangian(Budget):
    """Constraint E[cost] = target by dual ascent on a Lagrange multiplier (augmented)."""

    name = "lagrangian"

    def __init__(self, *, weight: float, lr: float, band: float) -> None:
        super().__init__(weight=weight, lr=lr, band=band)
        self.lam = 0.0
        self.violation = 0.0

    def loss(self, ratio: Tensor, argmax_ratio: float) -> Tensor:
        # integral (the multiplier) and proportional (the latest violation) parts
        return (self.lam + self.weight * self.violation) * (ratio - 1.0)

    def update(self, ratio: float, argmax_ratio: float, confidence: float) -> None:
        self.violation = (1.0 - confidence) * (ratio - 1.0) + confidence * (argmax_ratio - 1.0)
        self.lam += self.lr * self.violation

    @property
    def multiplier(self) -> float:
        return self.lam + self.weight * self.violation

    def state_dict(self) -> dict[str, Any]:
        return {"lam": self.lam, "violation": self.violation}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.lam = float(state["lam"])
        self.violation = float(state["violation"])


@BUDGETS.register("penalty")
class Penalty(Budget):
    """A smooth two-sided penalty on (E[cost] / target - 1)^2."""

    name = "penalty"

    def loss(self, ratio: Tensor, argmax_ratio: float) -> Tensor:
        return self.weight * (ratio - 1.0) ** 2


@BUDGETS.register("tas")
class Tas(Budget):
    """The previous release's rule (TAS): log E[cost] pushed by the argmax network's side."""

    name = "tas"

    def loss(self, ratio: Tensor, argmax_ratio: float) -> Tensor:
        return self.weight * budget_loss(ratio, argmax_ratio, 1.0, self.band)


def create_budget(name: str, *, weight: float, lr: float, band: float) -> Budget:
    budget: Budget = BUDGETS.create(name, weight=weight, lr=lr, band=band)
    return budget


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
