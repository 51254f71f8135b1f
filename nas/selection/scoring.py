"""Scores of sub-networks with the supernet's inherited weights, and the GCN fitted to them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from nas.errors import ConfigError
from nas.selection.candidates import CandidateScorer
from nas.selection.config import MIN_SAMPLES, RankConfig
from nas.selection.sampler import _one_thread, as_dict, sample_widths, scoring_band
from nas.supernet import Supernet
from predictors import GraphEncoder, Predictor, fit_predictor

if TYPE_CHECKING:
    from nas.cost import CostModel

__all__ = ["fit_on_supernet", "score_subnets"]


# -- scores --------------------------------------------------------------------------------------
def score_subnets(
    supernet: Supernet,
    encoder: GraphEncoder,
    widths: Tensor,
    calibration: Sequence[tuple[Tensor, Tensor]],
    val_loader: Iterable[Any],
    device: torch.device | str,
    *,
    progress: bool = True,
    scorer: CandidateScorer | None = None,
) -> Tensor:
    """The score of each sub-network with the supernet's weights: its negative mean validation
    loss (higher = better; a loss has far fewer ties than an accuracy on a few hundred images),
    each after recomputing its BN statistics on ``calibration`` batches
    (:class:`~nas.selection.candidates.CandidateScorer`; pass one to share its cache)."""
    scorer = scorer or CandidateScorer(supernet, calibration, val_loader, device)
    rows = [as_dict(encoder, row) for row in widths]
    results = scorer.score_many(rows, progress=progress, desc="score sub-networks")
    return torch.tensor([-r.loss for r in results])


def fit_on_supernet(
    supernet: Supernet,
    choices: Mapping[str, Sequence[int]],
    target: float,
    calibration: Sequence[tuple[Tensor, Tensor]],
    val_loader: Iterable[Any],
    config: RankConfig,
    device: torch.device | str,
    progress: bool = True,
    cost: CostModel | None = None,
    scorer: CandidateScorer | None = None,
) -> tuple[Predictor, Tensor, Tensor]:
    """Sample and score sub-networks (in the band of ``target``, in MACs or ``cost``'s unit),
    fit the GCN on the scores."""
    encoder = GraphEncoder.for_space(supernet.space)
    gen = torch.Generator().manual_seed(config.seed)
    band = scoring_band(target, config)
    widths = sample_widths(encoder, choices, config.samples, gen, band=band, cost=cost)
    if len(widths) < MIN_SAMPLES:
        where = (
            f"within {config.band:.0%} of the budget"
            if config.sampling == "band"
            else "on the grid of width choices"
        )
        raise ConfigError(
            f"only {len(widths)} distinct sub-networks lie {where}; the predictor needs at "
            f"least {MIN_SAMPLES} (widen the sampling band, nas rank --band, or sample "
            "uniformly, --sampling uniform; or change the search's --width-ratios)"
        )
    scores = score_subnets(
        supernet, encoder, widths, calibration, val_loader, device, progress=progress, scorer=scorer
    )
    with _one_thread():
        predictor = fit_predictor(encoder, widths, scores, config.predictor())
    return predictor, widths, scores
