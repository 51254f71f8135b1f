"""Gate strategies: architecture parameters and the channel masks they induce.

Modules: ``base`` (the :class:`GateStrategy` interface and the :data:`STRATEGIES` registry),
``schedules`` (temperature annealing, :data:`SCHEDULES`) and one module per kind of strategy
(``width_gumbel``; ``channel_gates``: ``channel-gumbel`` and ``scp``; ``conditional``:
``conditional-gumbel`` and ``batch-shaping``). A new strategy is a
module here with a class registered by ``@register_strategy("name")``; it runs through the
unchanged search loop, budget and extraction.
"""

import nas.gates.channel_gates
import nas.gates.conditional
import nas.gates.width_gumbel  # noqa: F401  (registers every strategy)
from nas.gates.base import (
    MODES,
    STRATEGIES,
    GateStrategy,
    create_strategy,
    list_strategies,
    register_strategy,
    strategy_class,
    strategy_options,
)
from nas.gates.channel_gates import ChannelGates, ChannelGumbel, SoftChannelPruning
from nas.gates.conditional import BatchShaping, ConditionalGates, ConditionalGumbel
from nas.gates.schedules import SCHEDULES, temperature
from nas.gates.width_gumbel import WidthGumbel

__all__ = [
    "MODES",
    "SCHEDULES",
    "STRATEGIES",
    "BatchShaping",
    "ChannelGates",
    "ChannelGumbel",
    "ConditionalGates",
    "ConditionalGumbel",
    "GateStrategy",
    "SoftChannelPruning",
    "WidthGumbel",
    "create_strategy",
    "list_strategies",
    "register_strategy",
    "strategy_class",
    "strategy_options",
    "temperature",
]
