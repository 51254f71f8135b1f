"""Scores of sub-networks with the supernet's inherited weights, and the GCN fitted to them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from tqdm import tqdm

from nas.engine import evaluate
from nas.errors import ConfigError
from nas.selection.config import MIN_SAMPLES, RankConfig
from nas.selection.sampler import _one_thread, as_dict, sample_widths, scoring_band
from nas.supernet import Supernet, recalibrate_bn
from predictors import GraphEncoder, Predictor, fit_predictor

if TYPE_CHECKING:
    from nas.cost import CostModel

__all__ = ["fit_on_supernet", "score_subnets"]


# -- scores --------------------------------------------------------------------------------------
@torch.no_grad()
def score_subnets(
    supernet: Supernet,
    encoder: GraphEncoder,
    widths: Tensor,
    calibration: Sequence[tuple[Tensor, Tensor]],
    val_loader: Iterable[Any],
    device: torch.device | str,
    *,
    progress: bool = True,
) -> Tensor:
    """The score of each sub-network with the supernet's weights: its negative mean validation
    loss (higher = better; a loss has far fewer ties than an accuracy on a few hundred images),
    each after recalibrating BN statistics on ``calibration`` batches."""
    scores = []
    for row in tqdm(widths, desc="score sub-networks", disable=not progress, leave=False):
        supernet.set_widths(as_dict(encoder, row))
        recalibrate_bn(supernet, calibration, device)
        scores.append(-evaluate(supernet, val_loader, device=device).loss)
    supernet.set_masks(None)
    return torch.tensor(scores)


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
        supernet, encoder, widths, calibration, val_loader, device, progress=progress
    )
    with _one_thread():
        predictor = fit_predictor(encoder, widths, scores, config.predictor())
    return predictor, widths, scores
