"""The cost model interface and its registry (:data:`COST_MODELS`).

A cost model prices a width assignment of a space in one unit (``macs``: exact MACs;
``latency``: milliseconds predicted from a measured table), as a sum of per-layer terms
(:meth:`CostModel.terms`, each a function of one layer's input and output widths: what the
projection's dynamic program needs), and three ways from them: :meth:`CostModel.exact` for a
concrete assignment, :meth:`CostModel.expected` for expected (real-valued) widths,
differentiable in them (the search's budget), and :meth:`CostModel.batched` for many
assignments at once (the predictor's pools).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, ClassVar

import torch
from torch import Tensor

from nas.cost.knapsack import CostTerm
from nas.registry import Registry
from search_spaces import SearchSpace

__all__ = ["COST_MODELS", "CostModel", "create_cost_model"]


class CostModel(abc.ABC):
    """The price of width assignments of one space."""

    name: ClassVar[str] = ""
    unit: ClassVar[str] = ""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    @abc.abstractmethod
    def terms(self) -> list[CostTerm]:
        """The cost as a sum of per-layer terms of (input width, output width)."""

    @cached_property
    def _terms(self) -> list[CostTerm]:
        return self.terms()

    def _total(self, width: Callable[[str | None, int], Tensor]) -> Tensor:
        total = torch.zeros((), dtype=torch.float64)
        for t in self._terms:
            total = total + t.fn(width(t.in_unit, t.fixed_in), width(t.out_unit, t.fixed_out))
        return total

    def exact(self, widths: Mapping[str, int]) -> float:
        """The cost of a concrete assignment."""
        return float(self._total(lambda u, fixed: _scalar(widths[u] if u else fixed)))

    def expected(self, widths: Mapping[str, Tensor]) -> Tensor:
        """The cost at expected widths, differentiable in them (exact at integer widths)."""
        return self._total(lambda u, fixed: widths[u].double() if u else _scalar(fixed))

    def batched(self, widths: Tensor) -> Tensor:
        """``(B,)`` costs of ``(B, U)`` assignments (columns in unit order)."""
        index = {u.name: i for i, u in enumerate(self.space.units)}
        w = widths.double()
        return self._total(lambda u, fixed: w[:, index[u]] if u else _scalar(fixed)).expand(
            widths.shape[0]
        )

    def full(self) -> float:
        """The cost of the full-width network."""
        return self.exact(self.space.full_widths())


def _scalar(value: float) -> Tensor:
    return torch.tensor(float(value), dtype=torch.float64)


COST_MODELS: Registry[type[CostModel]] = Registry("cost model")


def create_cost_model(name: str, space: SearchSpace, **options: Any) -> CostModel:
    """The registered cost model ``name`` for ``space`` (``latency`` takes ``table=``)."""
    model: CostModel = COST_MODELS.create(name, space, **options)
    return model
