"""Pruning by channel-importance criteria under a budget (the home of ``nas prune``).

The criteria themselves (L1, FPGM, BN scale, CHIP, HRel, random, uniform) live in
:mod:`nas.importance`; this package turns their scores into widths under a MAC budget (uniform,
global and greedy allocation, or the widths of a given spec), extracts the network with the
channels the criterion keeps and fine-tunes it with the search's fine-tuning and distillation
options. It sits beside :mod:`nas.width_search` in the layer order (it may use the importance
criteria, extraction, the supernet and the cost models). :mod:`nas.pruning.pipeline` is the
whole method as one call (:func:`run_prune` into a run directory, ``pipeline.prune`` in memory,
``nas.prune``); the ``nas prune`` command only parses options into it and prints.
"""

from nas.pruning.allocation import (
    ALLOCATIONS,
    Allocation,
    allocate,
    check_reachable,
    marginal_macs,
)
from nas.pruning.evaluation import masked_accuracy
from nas.pruning.pipeline import PruneResult, run_prune
from nas.pruning.prune import (
    PruneConfig,
    Pruning,
    Reference,
    compare_reference,
    prune_budget,
    prune_network,
    score_and_allocate,
)

__all__ = [
    "ALLOCATIONS",
    "Allocation",
    "PruneConfig",
    "PruneResult",
    "Pruning",
    "Reference",
    "allocate",
    "check_reachable",
    "compare_reference",
    "marginal_macs",
    "masked_accuracy",
    "prune_budget",
    "prune_network",
    "run_prune",
    "score_and_allocate",
]
