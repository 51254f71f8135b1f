"""Gate strategies: architecture parameters and the channel masks they induce.

Modules: ``base`` (the :class:`GateStrategy` interface and the :data:`STRATEGIES` registry),
``schedules`` (temperature annealing, :data:`SCHEDULES`) and one module per strategy
(``width_gumbel``). A new strategy is a module here with a class registered by
``@register_strategy("name")``; it runs through the unchanged search loop, budget and extraction.
"""

import nas.gates.width_gumbel  # noqa: F401  (registers width-gumbel)
from nas.gates.base import (
    MODES,
    STRATEGIES,
    GateStrategy,
    create_strategy,
    list_strategies,
    register_strategy,
)
from nas.gates.schedules import SCHEDULES, temperature
from nas.gates.width_gumbel import WidthGumbel

__all__ = [
    "MODES",
    "SCHEDULES",
    "STRATEGIES",
    "GateStrategy",
    "WidthGumbel",
    "create_strategy",
    "list_strategies",
    "register_strategy",
    "temperature",
]
