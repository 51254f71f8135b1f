"""Compute cost: the MAC count, cost models, budget targets, budget losses and the projection.

Modules: ``base`` (the :class:`CostModel` interface and :data:`COST_MODELS`), ``macs`` (the MAC
cost model and counters), ``latency`` (measured per-layer latency tables and the latency cost
model), ``timing`` (measuring them; :func:`~nas.cost.timing.measure_latency_table`, what ``nas
latency-table`` runs), ``profile`` (:func:`profile_network`: MACs, parameters, units and
latency of a network, what ``nas profile`` runs), ``target`` (parsing ``--target-macs`` and
``--target-latency`` once into a run's :class:`ResolvedBudget`), ``budget`` (budget losses,
:data:`BUDGETS`), ``knapsack`` (the most probable widths in a cost band) and ``projection``
(bringing found widths into the budget band, :data:`PROJECTIONS`). A new cost model subclasses
:class:`CostModel` (its per-layer :meth:`~CostModel.terms`) and registers in
:data:`COST_MODELS`.
"""

from nas.cost.base import COST_MODELS, CostModel, create_cost_model
from nas.cost.budget import BUDGETS, Budget, budget_loss, create_budget, smallest_macs
from nas.cost.latency import LatencyCost, LatencyTable
from nas.cost.macs import (
    MacsCost,
    count_macs,
    count_model_params,
    count_params,
    mac_cost_terms,
    measure_macs,
)
from nas.cost.profile import profile_network
from nas.cost.projection import PROJECTIONS, project_most_probable, project_to_budget
from nas.cost.target import (
    ResolvedBudget,
    TargetBand,
    parse_target_latency,
    parse_target_macs,
    resolve_budget,
)

__all__ = [
    "BUDGETS",
    "COST_MODELS",
    "PROJECTIONS",
    "Budget",
    "CostModel",
    "LatencyCost",
    "LatencyTable",
    "MacsCost",
    "ResolvedBudget",
    "TargetBand",
    "budget_loss",
    "count_macs",
    "count_model_params",
    "count_params",
    "create_budget",
    "create_cost_model",
    "mac_cost_terms",
    "measure_macs",
    "parse_target_latency",
    "parse_target_macs",
    "profile_network",
    "project_most_probable",
    "project_to_budget",
    "resolve_budget",
    "smallest_macs",
]
