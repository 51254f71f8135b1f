"""Channel importance: criteria that score every channel of a trained network.

Modules: ``base`` (the :data:`CRITERIA` registry, :func:`channel_scores`, :func:`channel_order`
and the rule for coupled units), ``magnitude`` (weight-only: ``l1``, ``l2``, ``fpgm``, ``bn``,
``random``, ``uniform``), ``activations`` (data-driven: ``chip``, ``hrel``) and ``function``
(data-driven: filters that respond to the same classes are redundant). A new criterion is a
function registered with :func:`~nas.importance.base.register_criterion` in a module of its
own here; :mod:`nas.pruning` turns scores into widths under a budget.
"""

import nas.importance.activations
import nas.importance.function
import nas.importance.magnitude  # noqa: F401  (registers l1, l2, fpgm, bn, random, uniform, first)
from nas.importance.base import (
    CRITERIA,
    Criterion,
    channel_order,
    channel_scores,
    register_criterion,
)

__all__ = ["CRITERIA", "Criterion", "channel_order", "channel_scores", "register_criterion"]
