"""Predictor-based selection (Chen et al., AAAI 2021): fit a GCN on supernet scores, rank a
pool of candidates under the budget, fine-tune the top-k briefly, keep the best."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nas.engine import Distillation, TrainConfig, evaluate, train_model
from nas.io import json_safe
from nas.selection.config import RankConfig
from nas.selection.sampler import as_dict, pool_band, sample_pool
from nas.selection.scoring import fit_on_supernet
from nas.supernet import Supernet, extract_at
from predictors import GraphEncoder, Predictor
from search_spaces import WidthSpec

__all__ = ["Selection", "select_with_predictor"]


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
    pool_band: tuple[float, float]  # their MACs range

    def summary(self) -> dict[str, Any]:
        """What ``selection.json`` holds: the settings used, the pool and the top-k."""
        return dict(
            json_safe(  # like the file: the caller gets null where JSON has no number
                {
                    "rank": asdict(self.config),
                    "samples_scored": len(self.sample_scores),
                    "pool_ranked": self.pool_size,
                    "pool_macs": list(self.pool_band),
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
) -> Selection:
    """Fit the GCN on supernet scores, rank a pool under the budget, fine-tune the top-k
    briefly (each extracted with BN statistics recalibrated for its widths) and return the best
    by validation accuracy. Its exact MACs are in ``[target * (1 - tolerance), target]``.

    ``pool``: the candidates from :func:`sample_pool` if the caller drew them already (to refuse
    an unreachable budget before writing anything); ``distill``: the distillation from
    ``teacher`` in the brief fine-tunes.
    """
    config.validate()
    start = time.perf_counter()
    space = supernet.space
    encoder = GraphEncoder.for_space(space)
    if pool is None:  # drawn first: an unreachable budget is refused before any scoring
        pool = sample_pool(encoder, choices, target, tolerance, config)
    device = finetune.device
    predictor, widths, scores = fit_on_supernet(
        supernet, choices, target, calibration, val_loader, config, device, progress
    )
    predicted = predictor.predict(pool)
    top = torch.argsort(predicted, descending=True)[: config.top_k]
    candidates: list[dict[str, Any]] = []
    for rank, i in enumerate(top.tolist(), start=1):
        spec = space.spec(as_dict(encoder, pool[i]))
        acc = _brief_finetune(
            supernet,
            spec,
            calibration,
            train_loader,
            val_loader,
            teacher,
            finetune,
            distill,
            config.topk_epochs,
        )
        candidates.append(
            {
                "rank": rank,
                "predicted": float(predicted[i]),
                "val_acc": acc,
                "macs": spec.macs(),
                "macs_ratio": spec.macs_ratio(),
                "widths": dict(spec.widths),
            }
        )
    best = max(candidates, key=lambda c: (c["val_acc"], c["predicted"]))
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
    )


def _brief_finetune(
    supernet: Supernet,
    spec: WidthSpec,
    calibration: Sequence[tuple[Tensor, Tensor]],
    train_loader: Any,
    val_loader: Iterable[Any],
    teacher: nn.Module | None,
    finetune: TrainConfig,
    distill: Distillation | None,
    epochs: int,
) -> float:
    """Validation accuracy of ``spec`` extracted from the supernet (BN statistics recalibrated
    for exactly its widths), after ``epochs`` of fine-tuning."""
    small = extract_at(supernet, spec, calibration).to(finetune.device)
    if epochs > 0:
        loader_state = _loader_snapshot(train_loader)
        cfg = TrainConfig(**{**asdict(finetune), "epochs": epochs})
        train_model(
            small, train_loader, config=cfg, teacher=teacher, distill=distill, progress=False
        )
        _loader_restore(train_loader, loader_state)
    return evaluate(small, val_loader, device=finetune.device).accuracy


def _loader_snapshot(loader: Any) -> Any:
    """Brief fine-tunes must not shift the data order of what follows them."""
    return copy.deepcopy(loader.state_dict()) if hasattr(loader, "state_dict") else None


def _loader_restore(loader: Any, state: Any) -> None:
    if state is not None:
        loader.load_state_dict(state)
