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

Strategies register by name (``register_strategy``) and are created with ``create_strategy``;
an unknown name is a :class:`~nas.errors.ConfigError`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.errors import ConfigError
from nas.supernet import Supernet, nested_masks
from search_spaces import SearchSpace

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

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


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

    def choice_log_probs(self) -> dict[str, Tensor]:
        return {
            u: F.log_softmax(lg.detach(), dim=-1)
            for u, lg in zip(self.units, self.logits, strict=True)
        }


StrategyFactory = Callable[[SearchSpace, Mapping[str, Sequence[int]]], GateStrategy]
_STRATEGIES: dict[str, StrategyFactory] = {}


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Add a gate strategy under ``name``; a duplicate name is refused."""
    if name in _STRATEGIES:
        raise ConfigError(f"gate strategy {name!r} is already registered")
    _STRATEGIES[name] = factory


def list_strategies() -> list[str]:
    return list(_STRATEGIES)


def check_strategy(name: str) -> None:
    if name not in _STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of: {', '.join(_STRATEGIES)}")


def create_strategy(
    name: str, space: SearchSpace, choices: Mapping[str, Sequence[int]]
) -> GateStrategy:
    check_strategy(name)
    return _STRATEGIES[name](space, choices)


register_strategy(WidthGumbel.name, WidthGumbel)
