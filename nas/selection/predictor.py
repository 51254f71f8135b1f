"""Predictor-based selection (Chen et al., AAAI 2021): fit a GCN on supernet scores, rank a
pool of candidates under the budget, fine-tune the top-k briefly, keep the best."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from nas.data import reseeded
from nas.engine import (
    Distillation,
    EvalResult,
    TrainConfig,
    evaluate,
    loader_state,
    restore_loader,
    train_model,
)
from nas.io import json_safe
from nas.selection.candidates import CandidateScorer
from nas.selection.config import RankConfig
from nas.selection.sampler import as_dict, pool_band, sample_pool
from nas.selection.scoring import fit_on_supernet
from nas.supernet import Supernet, extract_at
from predictors import GraphEncoder, Predictor
from search_spaces import WidthSpec

if TYPE_CHECKING:
    from nas.cost import CostModel

__all__ = ["Selection", "cost_fields", "cost_key", "delivered_quality", "select_with_predictor"]


# -- predictor-based selection -----------------------------------------------------------------
@dataclass
class Selection:
    """Result of predictor-based selection."""

    spec: WidthSpec
    predictor: Predictor
    sample_widths: Tensor
    sample_scores: Tensor
    candidates: list[dict[str, Any]]  # the top-k with predicted score and brief fine-tune acc
    seconds: float
    config: RankConfig
    pool_size: int  # distinct candidates ranked (config.pool, or fewer where the band holds fewer)
    pool_band: tuple[float, float]  # their cost range (MACs, or the cost model's unit)
    cost: str = "macs"  # the cost's name with its unit: macs, latency_ms

    def summary(self) -> dict[str, Any]:
        """What ``selection.json`` holds: the settings used, the pool and the top-k."""
        return dict(
            json_safe(  # like the file: the caller gets null where JSON has no number
                {
                    "rank": asdict(self.config),
                    "samples_scored": len(self.sample_scores),
                    "pool_ranked": self.pool_size,
                    f"pool_{self.cost}": list(self.pool_band),
                    "candidates": self.candidates,
                    "seconds": round(self.seconds, 2),
                }
            )
        )


def select_with_predictor(
    supernet: Supernet,
    choices: Mapping[str, Sequence[int]],
    target: float,
    tolerance: float,
    calibration: Sequence[tuple[Tensor, Tensor]],
    train_loader: Any,
    val_loader: Iterable[Any],
    teacher: nn.Module | None,
    finetune: TrainConfig,
    config: RankConfig,
    *,
    distill: Distillation | None = None,
    pool: Tensor | None = None,
    progress: bool = True,
    cost: CostModel | None = None,
    scorer: CandidateScorer | None = None,
) -> Selection:
    """Fit the GCN on supernet scores, rank a pool under the budget, fine-tune the top-k
    briefly (each extracted with BN statistics recalibrated for its widths) and return the best
    by validation accuracy. Its exact cost is in ``[target * (1 - tolerance), target]``: MACs,
    or with ``cost`` that model's (``target`` in its unit, e.g. predicted milliseconds).

    ``pool``: the candidates from :func:`sample_pool` if the caller drew them already (to refuse
    an unreachable budget before writing anything); ``distill``: the distillation from
    ``teacher`` in the brief fine-tunes.
    """
    config.validate()
    start = time.perf_counter()
    space = supernet.space
    encoder = GraphEncoder.for_space(space)
    if pool is None:  # drawn first: an unreachable budget is refused before any scoring
        pool = sample_pool(encoder, choices, target, tolerance, config, cost=cost)
    device = finetune.device
    predictor, widths, scores = fit_on_supernet(
        supernet, choices, target, calibration, val_loader, config, device, progress, cost, scorer
    )
    predicted = predictor.predict(pool)
    top = torch.argsort(predicted, descending=True)[: config.top_k]
    candidates: list[dict[str, Any]] = []
    for rank, i in enumerate(top.tolist(), start=1):
        spec = space.spec(as_dict(encoder, pool[i]))
        result = delivered_quality(
            supernet,
            spec,
            calibration,
            train_loader,
            val_loader,
            teacher,
            finetune,
            distill,
            epochs=config.topk_epochs,
        )
        candidates.append(
            {
                "rank": rank,
                "predicted": float(predicted[i]),
                "val_acc": result.accuracy,
                "val_loss": result.loss,
                "macs": spec.macs(),
                "macs_ratio": spec.macs_ratio(),
                **cost_fields(cost, spec),
                "widths": dict(spec.widths),
            }
        )
    best = max(candidates, key=lambda c: (c["val_acc"], -c["val_loss"], c["predicted"]))
    best_widths: dict[str, int] = best["widths"]
    return Selection(
        space.spec(best_widths),
        predictor,
        widths,
        scores,
        candidates,
        time.perf_counter() - start,
        config,
        len(pool),
        pool_band(target, tolerance),
        "macs" if cost is None else cost_key(cost),
    )


def cost_key(cost: CostModel) -> str:
    """The cost's name with its unit, as file keys spell it (``macs``, ``latency_ms``)."""
    return cost.name if cost.name == "macs" else f"{cost.name}_{cost.unit}"


def cost_fields(cost: CostModel | None, spec: WidthSpec) -> dict[str, float]:
    """A candidate's cost under a model other than MACs (its predicted value and ratio)."""
    if cost is None or cost.name == "macs":
        return {}
    value = cost.exact(dict(spec.widths))
    return {f"predicted_{cost_key(cost)}": value, f"{cost.name}_ratio": value / cost.full()}


def delivered_quality(
    supernet: Supernet,
    spec: WidthSpec,
    calibration: Sequence[tuple[Tensor, Tensor]],
    train_loader: Any,
    eval_loader: Iterable[Any],
    teacher: nn.Module | None,
    finetune: TrainConfig,
    distill: Distillation | None,
    *,
    epochs: int | None = None,
    seed: int | None = None,
) -> EvalResult:
    """What the product delivers for ``spec``: its network extracted from the supernet (BN
    statistics recalibrated for its widths), fine-tuned with distillation from ``teacher`` for
    ``epochs`` (default ``finetune.epochs``; 0: not at all), evaluated on ``eval_loader``.
    With ``seed``, the fine-tuning's random state and data order are those of ``seed``. The
    training loader is left where it was, so what follows sees the data order it would have
    seen."""
    small = extract_at(supernet, spec, calibration).to(finetune.device)
    epochs = finetune.epochs if epochs is None else epochs
    if epochs > 0:
        start = loader_state(train_loader)
        loader = train_loader if seed is None else reseeded(train_loader, seed)
        config = replace(finetune, epochs=epochs, seed=finetune.seed if seed is None else seed)
        train_model(small, loader, config=config, teacher=teacher, distill=distill, progress=False)
        restore_loader(train_loader, start)
    return evaluate(small, eval_loader, device=finetune.device)
