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

What a strategy declares about itself (class attributes), so the loop needs no special cases:

* ``bilevel``: True (``width-gumbel``): the architecture parameters train on their own split in
  alternating architecture steps; False (``channel-gumbel``, ``scp``): joint, single-level
  training, the gates (or the BN parameters they come from) trained with the weights in one
  step on the weights' batches, under the same budget;
* ``train_mode``: the mask mode of the joint steps (``"hard"`` straight-through samples, or
  ``"sample"`` relaxed ones);
* ``per_input``: whether the masks depend on the input (a conditional network);
* ``own_budget``: whether it brings its own budget term, :meth:`GateStrategy.budget_loss`
  (``channel-gumbel``'s batch activation loss), priced in MACs; else the search's ``--budget``
  on the expected cost applies;
* ``group_size`` (per instance): channels that open and close together (1: single channels);
* :meth:`GateStrategy.choices_for`: the width choices it makes of the search's, known without
  building it;
* :meth:`GateStrategy.channel_order`: which channels extraction keeps (gates open first), else
  the nested order of the width choices.

Strategies are registered in :data:`STRATEGIES` (``register_strategy``, also as a class
decorator) and made with ``create_strategy(name, space, choices, **options)``: the options are
the keyword-only arguments of the strategy's constructor (``--strategy-option key=value`` on the
command line, typed from the constructor's annotations by :func:`strategy_options`); an unknown
name or option is a :class:`~nas.errors.ConfigError`. :func:`strategy_class` gives a registered
name's class, whose attributes declare its capabilities (a factory declares the class it returns
by its return annotation).
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
    "strategy_class",
    "strategy_options",
]

MODES = ("sample", "hard", "relaxed", "discrete")


class GateStrategy(nn.Module, abc.ABC):
    """Architecture parameters and the masks they induce (see the module docstring)."""

    name: ClassVar[str] = ""
    bilevel: ClassVar[bool] = True
    train_mode: ClassVar[str] = "hard"
    per_input: ClassVar[bool] = False
    own_budget: ClassVar[bool] = False
    group_size: int = 1

    def __init__(self, space: SearchSpace, choices: Mapping[str, Sequence[int]]) -> None:
        super().__init__()
        self.space = space
        self.units = [u.name for u in space.units]
        self.choices = {u: list(choices[u]) for u in self.units}

    @classmethod
    def choices_for(
        cls, space: SearchSpace, choices: Mapping[str, Sequence[int]], **options: Any
    ) -> dict[str, list[int]]:
        """The width choices a strategy made with ``options`` picks from, given the search's
        ``choices`` (what its ``choices`` attribute will hold), without building it."""
        return {u.name: list(choices[u.name]) for u in space.units}

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

    def budget_loss(self, target_ratio: float) -> Tensor | None:
        """The strategy's own budget term toward ``target_ratio`` of the full MACs, computed from
        the masks of the last :meth:`gate` call; None: the search's ``--budget`` applies."""
        return None

    def channel_order(self) -> dict[str, Tensor] | None:
        """Per unit, its channels from most to least open, for extraction (a width ``w`` then
        keeps the ``w`` most open ones); None: the nested order of the width choices."""
        return None

    def set_progress(self, progress: float) -> None:
        """The share of the search steps done (0 to 1), told before every step; strategies
        with phases (``batch-shaping``) use it."""
        self.progress = progress

    def make_static(self, batches: Any, share: float, device: torch.device) -> None:
        """Per-input strategies: turn the gates into one static pruning (channels open for
        fewer than ``share`` of the images of ``batches`` removed)."""
        raise NotImplementedError(f"{self.name} is not a per-input strategy")

    def permute(self, order: Mapping[str, Tensor]) -> None:
        """Reorder the strategy's own per-channel parameters as the supernet's channels were
        reordered by ``order`` (:func:`nas.extraction.permute_channels`); none by default."""

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


def strategy_class(name: str) -> type[GateStrategy]:
    """The class of the strategy registered as ``name``: the entry itself, or the class a
    factory's return annotation names (:class:`GateStrategy` where it names none); its class
    attributes declare what the strategy does (``bilevel``, ``per_input``, ``own_budget``...)."""
    import inspect
    import typing

    entry = STRATEGIES.get(name)
    if inspect.isclass(entry) and issubclass(entry, GateStrategy):
        return entry
    try:
        returned = typing.get_type_hints(entry).get("return")
    except Exception:  # unresolvable annotations: nothing declared
        returned = None
    if inspect.isclass(returned) and issubclass(returned, GateStrategy):
        return returned
    return GateStrategy


def create_strategy(
    name: str, space: SearchSpace, choices: Mapping[str, Sequence[int]], **options: Any
) -> GateStrategy:
    """The strategy ``name`` for ``space`` and its width ``choices``, with ``options``."""
    strategy: GateStrategy = STRATEGIES.create(name, space, choices, **options)
    return strategy


def strategy_options(name: str, items: Sequence[str]) -> dict[str, Any]:
    """``key=value`` texts as the keyword options of strategy ``name``, each converted to the
    type its constructor declares (int, float, bool, str); a one-line :class:`ConfigError` for
    a malformed item, an option the strategy does not take, or a value of the wrong type."""
    import inspect
    import typing

    from nas.errors import ConfigError

    factory = STRATEGIES.get(name)
    params = {
        p.name: p
        for p in inspect.signature(factory).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    try:
        hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    except Exception:  # unresolvable annotations: keep the values as text
        hints = {}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--strategy-option takes key=value, got {item!r}")
        if key not in params:
            takes = ", ".join(params) or "none"
            raise ConfigError(
                f"gate strategy {name!r} has no option {key!r} (its options: {takes})"
            )
        kind = hints.get(key, str)
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value: Any = text.lower() in ("true", "1", "yes")
            elif kind in (int, float):
                value = kind(text)
                if kind is float and not math.isfinite(value):
                    raise ValueError(text)
            else:
                value = text
        except ValueError:
            what = getattr(kind, "__name__", kind)
            raise ConfigError(f"--strategy-option {key}: {text!r} is not of type {what}") from None
        out[key] = value
    return out
