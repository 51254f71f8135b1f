"""What a search records and returns: per-epoch records, ``summary.csv``, the outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import Module

from nas.cost import CostModel, ResolvedBudget
from nas.engine import EvalResult, tensorboard
from nas.gates import GateStrategy
from nas.io import atomic_write_text
from nas.supernet import Supernet
from search_spaces import WidthSpec

__all__ = [
    "SEARCH_SUMMARY",
    "SearchOutcome",
    "SearchRecord",
    "log_unit_choices",
    "write_search_summary",
]

SEARCH_SUMMARY = "summary.csv"


@dataclass
class SearchRecord:
    """One row of the search summary (one epoch)."""

    epoch: int
    phase: str
    tau: float
    lr: float
    train_loss: float
    arch_loss: float | None
    budget_loss: float | None
    expected_macs: float
    expected_macs_ratio: float
    argmax_macs_ratio: float
    confidence: float  # mean over units of the largest choice probability
    entropy: float  # mean over units of the normalised entropy of the choice distribution
    multiplier: float  # the budget's weight (the Lagrange multiplier for lagrangian)
    val_acc: float  # of the argmax network, on the validation split
    seconds: float


@dataclass
class SearchOutcome:
    """What the search found, before fine-tuning."""

    spec: WidthSpec  # the delivered widths (the argmax projected into the band; the full
    # space's for a conditional network, whose widths change per input)
    supernet: Supernet
    strategy: GateStrategy
    argmax_widths: dict[str, int]
    relaxed: EvalResult  # the noise-free relaxation at the final temperature
    argmax_result: EvalResult  # the most probable widths
    delivered: EvalResult  # the delivered widths, before fine-tuning
    arch_confidence: float
    projection_shift: float
    budget: ResolvedBudget  # the run's budget (what it counted, the target)
    calibration: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    records: list[SearchRecord] = field(default_factory=list)
    seconds: float = 0.0
    # a per-input strategy's conditional network (nas.gates.deploy) at the end of the search
    conditional: Module | None = None
    static: bool = True  # False: the conditional network is the deliverable (no --static)
    # a calibrated conditional network: its gates' logit offset, and the average MAC ratio it
    # gives on the validation images
    gate_offset: float | None = None
    calibrated_macs_ratio: float | None = None

    @property
    def cost(self) -> CostModel:
        """What the budget counted."""
        return self.budget.cost

    @property
    def relaxation_gap(self) -> float:
        """Validation accuracy (points) of the relaxed network minus that of the delivered one,
        both with supernet weights, on the validation split (which trained neither)."""
        return self.relaxed.accuracy - self.delivered.accuracy

    @property
    def relaxation_gap_loss(self) -> float:
        """Validation loss of the delivered network minus that of the relaxed one."""
        return self.delivered.loss - self.relaxed.loss


def write_search_summary(path: Path, records: list[SearchRecord]) -> None:
    """Per-epoch search summary as CSV (temperature, expected MACs, losses, accuracy), mirrored
    to TensorBoard under ``--tensorboard`` (:mod:`nas.engine.tensorboard`)."""
    names = [f.name for f in fields(SearchRecord)]
    lines = [",".join(names)]
    for r in records:
        row = asdict(r)
        lines.append(",".join("" if row[n] is None else _fmt(row[n]) for n in names))
    atomic_write_text(path, "\n".join(lines) + "\n")
    tensorboard.log_rows(path, [asdict(r) for r in records])


def log_unit_choices(path: Path, epoch: int, strategy: GateStrategy) -> None:
    """Under ``--tensorboard``: each unit's expected width, largest choice probability and
    distribution over its width choices at ``epoch``, beside the search summary ``path``."""
    if not tensorboard.enabled():
        return
    with torch.no_grad():
        expected = strategy.expected_widths()
        probs = {u: lp.exp() for u, lp in strategy.choice_log_probs().items()}
    scalars = {f"units/expected_width/{u}": float(expected[u]) for u in probs}
    scalars |= {f"units/max_prob/{u}": float(p.max()) for u, p in probs.items()}
    tensorboard.log_scalars(path, epoch, scalars)
    choices = {u: (strategy.choices[u], p) for u, p in probs.items() if len(p) > 1}
    tensorboard.log_distributions(path, epoch, {f"widths/{u}": c for u, c in choices.items()})


def _fmt(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
