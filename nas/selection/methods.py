"""How the final widths of a search are chosen: the registry of selection methods.

``argmax`` keeps the strategy's most probable widths, projected onto the budget (the search
already did that: nothing to do); ``predictor`` picks the best of a GCN predictor's top-k
(:func:`~nas.selection.predictor.select_with_predictor`). The search job looks the method up
here by the ``--select`` name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from nas.engine import Distillation, TrainConfig
from nas.registry import Registry
from nas.selection.config import RankConfig
from nas.selection.predictor import Selection, select_with_predictor
from nas.supernet import Supernet

if TYPE_CHECKING:
    from nas.cost import CostModel

__all__ = ["SELECTIONS", "SelectionRequest"]


@dataclass
class SelectionRequest:
    """What a selection method may use: the searched supernet and its width choices, the budget
    (``target`` in the unit of ``cost``: MACs when it is None or counts MACs), the data, the
    teacher and the fine-tuning options."""

    supernet: Supernet
    choices: Mapping[str, Sequence[int]]
    target: float
    tolerance: float
    calibration: Sequence[tuple[Tensor, Tensor]]
    train_loader: Any
    val_loader: Iterable[Any]
    teacher: nn.Module | None
    finetune: TrainConfig
    distill: Distillation
    rank: RankConfig
    progress: bool = True
    cost: CostModel | None = None


SelectionMethod = Callable[[SelectionRequest], Selection | None]
SELECTIONS: Registry[SelectionMethod] = Registry("selection method")


@SELECTIONS.register("argmax")
def argmax(request: SelectionRequest) -> Selection | None:
    """The projected argmax of the strategy (the search's own result)."""
    return None


@SELECTIONS.register("predictor")
def predictor(request: SelectionRequest) -> Selection | None:
    """The best of a GCN predictor's top-k, each fine-tuned briefly."""
    r = request
    return select_with_predictor(
        r.supernet,
        r.choices,
        r.target,
        r.tolerance,
        r.calibration,
        r.train_loader,
        r.val_loader,
        r.teacher,
        r.finetune,
        r.rank,
        distill=r.distill,
        progress=r.progress,
        cost=r.cost,
    )
