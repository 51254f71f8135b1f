"""The one generic registry (:class:`Registry`), for everything chosen by name.

Registries in the toolkit: search spaces (``search_spaces.SPACES``), gate strategies
(``nas.gates.STRATEGIES``), channel-importance criteria (``nas.importance.CRITERIA``), cost models
(``nas.cost.COST_MODELS``), temperature schedules (``nas.gates.SCHEDULES``), dataset kinds
(``nas.data.DATASET_KINDS``) and selection methods (``nas.selection.SELECTIONS``). The class
lives in ``search_spaces.registry`` (the bottom layer) so that the spaces can use it too.
"""

from __future__ import annotations

from search_spaces.registry import Registry, option_names

__all__ = ["Registry", "option_names"]
