"""A run's budget: the target as the user writes it (a ratio of the full network, absolute
MACs, or milliseconds), resolved once into a :class:`ResolvedBudget` that every stage receives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING

from nas.errors import ConfigError

if TYPE_CHECKING:
    from nas.cost.base import CostModel
    from search_spaces import SearchSpace

__all__ = [
    "ResolvedBudget",
    "TargetBand",
    "parse_target_latency",
    "parse_target_macs",
    "resolve_budget",
]


@dataclass(frozen=True)
class TargetBand:
    """A target and its tolerance: what lands in ``[target (1 - tolerance), target (1 +
    tolerance)]`` meets it (in the target's unit: MACs, or milliseconds)."""

    target: float
    tolerance: float

    @property
    def low(self) -> float:
        return self.target * (1 - self.tolerance)

    @property
    def high(self) -> float:
        return self.target * (1 + self.tolerance)


@dataclass(frozen=True, eq=False)
class ResolvedBudget(TargetBand):
    """The budget of one run, resolved once from its options (:func:`resolve_budget`): the cost
    model, the target in its unit (MACs, or milliseconds), the tolerance band, and the width
    choices the run picks from (with the cost of the smallest network they allow,
    :attr:`floor`). Every stage (the search's budget loss, the projection, the choosers, the
    ``--compare`` twin, the metrics) receives this object; none parses a target again."""

    cost: CostModel
    choices: Mapping[str, Sequence[int]] = field(default_factory=dict)

    __eq__ = object.__eq__  # one run's budget: identity, not its numbers
    __hash__ = object.__hash__

    def __post_init__(self) -> None:  # an immutable copy: nothing downstream changes the choices
        frozen = MappingProxyType({u: tuple(c) for u, c in self.choices.items()})
        object.__setattr__(self, "choices", frozen)

    @property
    def space(self) -> SearchSpace:
        return self.cost.space

    @property
    def unit(self) -> str:
        """The cost's unit (``MACs``, ``ms``)."""
        return self.cost.unit

    @property
    def counts_macs(self) -> bool:
        return self.cost.name == "macs"

    @cached_property
    def full(self) -> float:
        """The full network's cost."""
        return self.cost.full()

    @property
    def ratio(self) -> float:
        """The target as a share of the full network's cost."""
        return self.target / self.full

    @property
    def target_macs(self) -> float | None:
        """The target in MACs (None for a budget in another unit)."""
        return self.target if self.counts_macs else None

    @cached_property
    def floor(self) -> float:
        """The cost of the smallest network the choices allow."""
        return self.cost.exact({u: min(c) for u, c in self.choices.items()})

    def holds(self, widths: Mapping[str, int]) -> bool:
        """Whether ``widths`` cost within the band."""
        return self.low <= self.cost.exact(dict(widths)) <= self.high


def resolve_budget(
    cost: CostModel,
    text: str | float,
    tolerance: float,
    choices: Mapping[str, Sequence[int]],
) -> ResolvedBudget:
    """The budget of ``text`` (``--target-macs`` for a MAC cost, ``--target-latency`` for
    another) in ``cost``'s unit; a one-line :class:`ConfigError` for a malformed target or one
    below the smallest network of ``choices``."""
    if cost.name == "macs":
        target = parse_target_macs(text, int(cost.space.macs()))
    else:
        target = parse_target_latency(text, cost.full())
    budget = ResolvedBudget(target, tolerance, cost, choices)
    if target < budget.floor * (1 - tolerance):
        floor, full = budget.floor, budget.full
        if budget.counts_macs:
            raise ConfigError(
                f"--target-macs {text} ({target:,.0f} MACs) is below the smallest network the "
                f"width choices allow ({floor:,.0f} MACs, {floor / full:.1%} of full); lower the "
                "smallest width ratio"
            )
        raise ConfigError(
            f"--target-latency {text} ({target:.4g} {cost.unit}) is below the smallest network "
            f"the width choices allow ({floor:.4g} {cost.unit} predicted)"
        )
    return budget


_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}


def parse_target_macs(text: str | float, full_macs: int) -> float:
    """A MAC target as a ratio of the full network (``0.5``) or absolute (``60M``, ``1.2G``).

    Returns the target in MACs. A ratio must be in (0, 1]; an absolute value must be positive
    and at most the full network's MACs.
    """
    s = str(text).strip()
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgG]?)", s)
    if m is None:
        raise ConfigError(f"bad --target-macs {s!r}: use a ratio like 0.5 or MACs like 60M")
    value, suffix = float(m.group(1)), m.group(2).upper()
    if not suffix:
        if not 0 < value <= 1:
            raise ConfigError(
                f"--target-macs ratio must be in (0, 1], got {s} "
                "(write absolute MACs with a suffix, e.g. 60M)"
            )
        return value * full_macs
    macs = value * _SUFFIX[suffix]
    if not 0 < macs <= full_macs:
        raise ConfigError(f"--target-macs {s} is not in (0, {full_macs:,}] (the full network)")
    return macs


def parse_target_latency(text: str | float, full_ms: float) -> float:
    """A latency target as a ratio of the full network's latency (``0.5``) or in milliseconds
    (``4ms``, ``4.5 ms``); returns milliseconds, in (0, full]."""
    s = str(text).strip()
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms)?", s, flags=re.IGNORECASE)
    if m is None:
        raise ConfigError(f"bad --target-latency {s!r}: use a ratio like 0.5 or a time like 4ms")
    value = float(m.group(1))
    if m.group(2) is None:
        if not 0 < value <= 1:
            raise ConfigError(
                f"--target-latency ratio must be in (0, 1], got {s} (write milliseconds as 4ms)"
            )
        return value * full_ms
    if not 0 < value <= full_ms:
        raise ConfigError(
            f"--target-latency {s} is not in (0, {full_ms:.4g} ms] (the full network, predicted)"
        )
    return value
