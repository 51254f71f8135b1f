"""How the final widths of a search are chosen: the registry of choosers (``--select``).

* ``argmax``: the strategy's most probable widths, projected onto the budget (what the search
  itself delivers);
* ``evolution``: an evolution of candidates scored on the supernet, seeded with the argmax, the
  uniform width and samples of the learned distribution (:func:`~nas.selection.choosers.evolve`);
* ``nao``: NAO's gradient steps in a learned continuous embedding of the widths, decoded back
  and repaired into the band (:func:`~nas.selection.nao.optimise`);
* ``greedy``: AutoSlim's slimming from the full width (:func:`~nas.selection.choosers.slim`);
* ``predictor``: the best of a GCN predictor's top-k, each fine-tuned briefly
  (:func:`~nas.selection.predictor.select_with_predictor`).

Whatever the chooser, the delivered widths and the **uniform width of the same budget** are both
scored on the supernet (validation loss and accuracy, BN statistics recomputed for each): the
:class:`Choice` says whether the search found anything better than uniform width on validation.
The search job looks the chooser up here by the ``--select`` name.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from nas.cost import ResolvedBudget
from nas.engine import Distillation, EvalResult, TrainConfig
from nas.registry import Registry
from nas.selection.candidates import CandidateScorer
from nas.selection.choosers import evolve, flat_log_probs, slim
from nas.selection.config import RankConfig
from nas.selection.nao import optimise
from nas.selection.predictor import select_with_predictor
from nas.supernet import Supernet
from predictors import Predictor
from search_spaces import WidthSpec

__all__ = ["GRID_CHOOSERS", "SELECTIONS", "Choice", "SelectionRequest", "choose"]

# the choosers that search the grid of width choices in the band (refused before any work where
# no assignment of the choices reaches it: :func:`~nas.selection.choosers.check_band`)
GRID_CHOOSERS = ("evolution", "nao", "greedy")


@dataclass
class SelectionRequest:
    """What a chooser may use: the searched supernet, the run's budget (its cost model, target,
    band and the width choices), the search's projected argmax (``initial``) and its learned
    log-probabilities, the uniform-width spec of the budget, the data, the teacher and the
    fine-tuning options."""

    supernet: Supernet
    budget: ResolvedBudget
    calibration: Sequence[tuple[Tensor, Tensor]]
    train_loader: Any
    val_loader: Iterable[Any]
    teacher: nn.Module | None
    finetune: TrainConfig
    distill: Distillation
    rank: RankConfig
    initial: WidthSpec | None = None  # the projected argmax (default: the uniform spec)
    uniform: WidthSpec | None = None  # the uniform widths of the budget (default: of its ratio)
    log_probs: Mapping[str, Tensor] | None = None  # per unit over its choices (default: flat)
    population: int = 16
    generations: int = 8
    seed: int = 0
    progress: bool = True
    scorer: CandidateScorer | None = None  # made on first use

    @property
    def choices(self) -> Mapping[str, Sequence[int]]:
        return self.budget.choices

    def get_scorer(self) -> CandidateScorer:
        if self.scorer is None:
            self.scorer = CandidateScorer(
                self.supernet, self.calibration, self.val_loader, self.finetune.device
            )
        return self.scorer

    def uniform_spec(self) -> WidthSpec:
        if self.uniform is not None:
            return self.uniform
        space = self.supernet.space
        return space.spec(space.uniform_widths_for_macs(min(1.0, self.budget.ratio)))

    def initial_spec(self) -> WidthSpec:
        return self.initial if self.initial is not None else self.uniform_spec()

    def first_members(self) -> list[dict[str, int]]:
        """The candidates a population chooser starts from: the projected argmax and the
        uniform width of the budget."""
        return [dict(self.initial_spec().widths), dict(self.uniform_spec().widths)]

    def prior(self) -> Mapping[str, Tensor]:
        """The search's log-probabilities over each unit's choices (flat without them)."""
        return self.log_probs if self.log_probs is not None else flat_log_probs(self.choices)


@dataclass
class Choice:
    """The chosen widths, how they compare with uniform width on the supernet (validation loss
    and accuracy, BN statistics recomputed for each), and what the chooser did."""

    method: str
    spec: WidthSpec
    delivered: EvalResult  # one-shot validation score of the chosen widths
    uniform: EvalResult  # ... of the uniform widths of the budget
    uniform_spec: WidthSpec
    scored: int  # distinct candidates scored on the supernet (the uniform one included)
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)  # selection.json (predictor)
    predictor: Predictor | None = None

    @property
    def beats_uniform(self) -> bool:
        """Whether the chosen widths score better than uniform width (lower validation loss)."""
        return self.delivered.loss < self.uniform.loss

    def metrics(self) -> dict[str, Any]:
        """What ``metrics.json`` gains."""
        return {
            "select": self.method,
            "oneshot_val_acc": self.delivered.accuracy,
            "oneshot_val_loss": self.delivered.loss,
            "uniform_oneshot_val_acc": self.uniform.accuracy,
            "uniform_oneshot_val_loss": self.uniform.loss,
            "beats_uniform_oneshot": self.beats_uniform,
            "candidates_scored": self.scored,
            "selection_seconds": round(self.seconds, 2),
        }


Chooser = Callable[[SelectionRequest], tuple[WidthSpec, dict[str, Any], Predictor | None]]
SELECTIONS: Registry[Chooser] = Registry("selection method")


def choose(name: str, request: SelectionRequest) -> Choice:
    """The widths chooser ``name`` picks, scored beside the uniform width on the supernet."""
    start = time.perf_counter()
    spec, details, predictor = SELECTIONS.get(name)(request)
    scorer = request.get_scorer()
    uniform_spec = request.uniform_spec()
    uniform = scorer.score(uniform_spec)
    delivered = scorer.score(spec)
    return Choice(
        name,
        spec,
        delivered,
        uniform,
        uniform_spec,
        scorer.scored,
        time.perf_counter() - start,
        details,
        predictor,
    )


@SELECTIONS.register("argmax")
def argmax(request: SelectionRequest) -> tuple[WidthSpec, dict[str, Any], Predictor | None]:
    """The projected argmax of the strategy (the search's own result)."""
    return request.initial_spec(), {}, None


@SELECTIONS.register("evolution")
def evolution(request: SelectionRequest) -> tuple[WidthSpec, dict[str, Any], Predictor | None]:
    """The best candidate of an evolution scored on the supernet (validation loss)."""
    r = request
    space = r.supernet.space
    widths = evolve(
        r.get_scorer(),
        r.budget,
        r.first_members(),
        r.prior(),
        population=r.population,
        generations=r.generations,
        seed=r.seed,
        progress=r.progress,
    )
    return space.spec(widths), {}, None


@SELECTIONS.register("nao")
def nao(request: SelectionRequest) -> tuple[WidthSpec, dict[str, Any], Predictor | None]:
    """NAO: gradient steps in a learned embedding of widths, decoded and scored on the supernet
    (:func:`~nas.selection.nao.optimise`; ``generations`` rounds of ``population // 2`` moves)."""
    r = request
    widths = optimise(
        r.get_scorer(),
        r.budget,
        r.first_members(),
        r.prior(),
        population=r.population,
        rounds=r.generations,
        seed=r.seed,
        progress=r.progress,
    )
    return r.supernet.space.spec(widths), {}, None


@SELECTIONS.register("greedy")
def greedy(request: SelectionRequest) -> tuple[WidthSpec, dict[str, Any], Predictor | None]:
    """AutoSlim's greedy slimming from the full width, scored on the supernet."""
    widths = slim(request.get_scorer(), request.budget, progress=request.progress)
    return request.supernet.space.spec(widths), {}, None


@SELECTIONS.register("predictor")
def predictor(request: SelectionRequest) -> tuple[WidthSpec, dict[str, Any], Predictor | None]:
    """The best of a GCN predictor's top-k, each fine-tuned briefly."""
    r = request
    selection = select_with_predictor(
        r.supernet,
        r.choices,
        r.budget.target,
        r.budget.tolerance,
        r.calibration,
        r.train_loader,
        r.val_loader,
        r.teacher,
        r.finetune,
        r.rank,
        distill=r.distill,
        progress=r.progress,
        cost=r.budget.cost,
        scorer=r.get_scorer(),
    )
    return selection.spec, selection.summary(), selection.predictor
