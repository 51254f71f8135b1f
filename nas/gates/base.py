"""Gate strategies: how a search turns architecture parameters into channel masks.

A strategy owns the architecture parameters (trained on the validation split) and, before every
forward pass of the supernet, sets the mask of each unit. The search loop, the MAC budget and
extraction only talk to this interface:

* :meth:`GateStrategy.gate` sets the masks for a pass in one of four modes: ``"sample"``
  (a Gumbel-softmax relaxed sample at temperature ``tau``), ``"hard"`` (a straight-through hard
  sample: the forward pass is a discrete network, gradients flow through the relaxation),
  ``"relaxed"`` (the deterministic relaxation ``softmax(logits / tau)``, no noise) and
  ``"discrete"`` (the current argmax widths);
* :meth:`GateStrategy.expected_widths` are the widths the MAC budget is computed from,
  differentiable in the architecture parameters;
* :meth:`GateStrategy.discrete_widths` and :meth:`GateStrategy.choice_log_probs` say what the
  strategy would pick, for the budget projection and extraction.

Strategies are registered in :data:`STRATEGIES` (``register_strategy``, also as a class
decorator) and made with ``create_strategy(name, space, choices, **options)``: the options are
the keyword-only arguments of the strategy's constructor; an unknown name or option is a
:class:`~nas.errors.ConfigError`.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from nas.registry import Registry
from nas.supernet import Supernet
from search_spaces import SearchSpace

__all__ = [
    "MODES",
    "STRATEGIES",
    "GateStrategy",
    "create_strategy",
    "list_strategies",
    "register_strategy",
]

MODES = ("sample", "hard", "relaxed", "discrete")


class GateStrategy(nn.Module, abc.ABC):
    """Architecture parameters and the masks they induce (see the module docstring)."""

    name: ClassVar[str] = ""

    def __init__(self, space: SearchSpace, choices: Mapping[str, Sequence[int]]) -> None:
        super().__init__()
        self.space = space
        self.units = [u.name for u in space.units]
        self.choices = {u: list(choices[u]) for u in self.units}

    def attach(self, supernet: Supernet) -> None:
        """Called once with the supernet; input-conditional strategies add their hooks here.

        The supernet is referenced, not registered as a submodule: the strategy's parameters
        and state_dict are the architecture parameters alone.
        """
        object.__setattr__(self, "_supernet", supernet)

    @property
    def supernet(self) -> Supernet:
        net = self.__dict__.get("_supernet")
        if net is None:
            raise RuntimeError("the strategy is not attached to a supernet")
        return net

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def gate(self, mode: str, tau: float) -> None:
        """Set the supernet's masks for the next forward pass."""
        if mode not in MODES:
            raise ValueError(f"unknown mask mode {mode!r}")
        self.supernet.set_masks(self.masks(mode, tau))

    @abc.abstractmethod
    def masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        """Per-unit channel masks for ``mode`` at temperature ``tau``."""

    @abc.abstractmethod
    def expected_widths(self) -> dict[str, Tensor]:
        """Per-unit expected width, differentiable in the architecture parameters."""

    @abc.abstractmethod
    def choice_log_probs(self) -> dict[str, Tensor]:
        """Per unit, the log-probability of each width choice (for the budget projection)."""

    def discrete_widths(self) -> dict[str, int]:
        """The most probable width of every unit."""
        return {u: self.choices[u][int(lp.argmax())] for u, lp in self.choice_log_probs().items()}

    def regularizer(self) -> Tensor:
        """An extra architecture loss (none by default)."""
        return torch.zeros((), device=self._device())

    def entropy(self) -> Tensor:
        """Mean over units of the entropy of each unit's choice distribution divided by
        ``log(number of choices)``: 1 for a uniform distribution, 0 for a decided one. The
        crispness term of the search lowers it; strategies whose distribution comes from
        parameters return it differentiable in them (this default is not)."""
        return _mean_entropy(self.choice_log_probs()).to(self._device())

    def confidence(self) -> float:
        """Mean over units of the largest choice probability (1: every unit decided)."""
        probs = [lp.exp().max() for lp in self.choice_log_probs().values()]
        return float(torch.stack(probs).mean()) if probs else 1.0

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


def _mean_entropy(log_probs: Mapping[str, Tensor]) -> Tensor:
    parts = [-(lp.exp() * lp).sum() / math.log(len(lp)) for lp in log_probs.values() if len(lp) > 1]
    return torch.stack(parts).mean() if parts else torch.zeros(())


STRATEGIES: Registry[Callable[..., GateStrategy]] = Registry("gate strategy")
S = TypeVar("S", bound=Callable[..., GateStrategy])


def register_strategy(name: str, factory: S | None = None) -> Any:
    """Add a gate strategy (a class or factory ``(space, choices, **options) -> GateStrategy``)
    under ``name``; without ``factory`` a class decorator. A duplicate name is refused."""
    if factory is None:
        return STRATEGIES.register(name)
    return STRATEGIES.register(name, factory)


def list_strategies() -> list[str]:
    return STRATEGIES.names()


def create_strategy(
    name: str, space: SearchSpace, choices: Mapping[str, Sequence[int]], **options: Any
) -> GateStrategy:
    """The strategy ``name`` for ``space`` and its width ``choices``, with ``options``."""
    strategy: GateStrategy = STRATEGIES.create(name, space, choices, **options)
    return strategy
