"""The cost model interface and its registry (:data:`COST_MODELS`).

A cost model prices a width assignment of a space in one unit (MACs today; a measured latency
later), three ways: :meth:`CostModel.exact` for a concrete assignment, :meth:`CostModel.expected`
for expected (real-valued) widths, differentiable in them (the search's budget), and
:meth:`CostModel.batched` for many assignments at once (the predictor's pools).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

from torch import Tensor

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
    def exact(self, widths: Mapping[str, int]) -> float:
        """The cost of a concrete assignment."""

    @abc.abstractmethod
    def expected(self, widths: Mapping[str, Tensor]) -> Tensor:
        """The cost at expected widths, differentiable in them (exact at integer widths)."""

    @abc.abstractmethod
    def batched(self, widths: Tensor) -> Tensor:
        """``(B,)`` costs of ``(B, U)`` assignments (columns in unit order)."""

    def full(self) -> float:
        """The cost of the full-width network."""
        return self.exact(self.space.full_widths())


COST_MODELS: Registry[type[CostModel]] = Registry("cost model")


def create_cost_model(name: str, space: SearchSpace) -> CostModel:
    """The registered cost model ``name`` for ``space``."""
    model: CostModel = COST_MODELS.create(name, space)
    return model
