"""Channel importance: criteria that score every channel of a trained network.

Modules: ``base`` (the :data:`CRITERIA` registry, :func:`channel_scores`, :func:`channel_order`
and the rule for coupled units) and ``magnitude`` (``l1``, ``bn``, ``first``). The data-driven
criteria (CHIP, HRel, ...) and the budget allocations that turn scores into widths come with
the criteria issue: a new criterion is a function registered with
:func:`~nas.importance.base.register_criterion` in a module of its own here.
"""

import nas.importance.magnitude  # noqa: F401  (registers l1, bn, first)
from nas.importance.base import (
    CRITERIA,
    Criterion,
    channel_order,
    channel_scores,
    register_criterion,
)

__all__ = ["CRITERIA", "Criterion", "channel_order", "channel_scores", "register_criterion"]
