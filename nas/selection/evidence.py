"""Is the predictor worth it? Rank correlations with the quality held-out sub-networks really
get from the product's pipeline, for the GCN, the raw supernet scores, MACs alone and the synflow
proxy, beside the noise ceiling of that truth."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from nas.engine import Distillation, TrainConfig
from nas.errors import ConfigError
from nas.selection.config import MIN_HOLDOUT, RankConfig
from nas.selection.predictor import delivered_quality
from nas.selection.proxies import synflow
from nas.selection.sampler import as_dict, pool_band, sample_widths
from nas.selection.scoring import score_subnets
from nas.supernet import Supernet
from predictors import Predictor, rank_correlations

if TYPE_CHECKING:
    from nas.cost import CostModel

__all__ = ["ranking_evidence", "undefined_note"]


# -- evidence ------------------------------------------------------------------------------------
def ranking_evidence(
    supernet: Supernet,
    predictor: Predictor,
    choices: Mapping[str, Sequence[int]],
    target: float,
    tolerance: float,
    calibration: Sequence[tuple[Tensor, Tensor]],
    train_loader: Any,
    val_loader: Iterable[Any],
    test_loader: Iterable[Any],
    teacher: nn.Module | None,
    finetune: TrainConfig,
    distill: Distillation,
    config: RankConfig,
    *,
    exclude: Tensor | None = None,
    progress: bool = True,
    cost: CostModel | None = None,
) -> dict[str, Any]:
    """Rank correlations, per method, with the quality each held-out sub-network really gets.

    The held-out networks are drawn where the selection ranks (exact costs in the pool band
    under the budget: MACs, or ``cost``'s with ``target`` in its unit; none of ``exclude``).
    Their "truth" is the product's own pipeline
    (:func:`~nas.selection.predictor.delivered_quality`: inherited weights, distillation
    fine-tune) measured as the test loss (fewer ties than accuracy; accuracy is reported too),
    once with ``config.seed`` and once more with the next seed: the rank correlation of the two
    is the **noise ceiling**, the best any predictor could reach. A correlation is NaN where it
    is undefined (constant values); :func:`json_safe` turns it into null."""
    encoder = predictor.encoder
    space = supernet.space
    gen = torch.Generator().manual_seed(config.seed + 2)
    band = pool_band(target, tolerance)
    held = sample_widths(
        encoder, choices, config.holdout, gen, band=band, exclude=exclude, cost=cost
    )
    if len(held) < MIN_HOLDOUT:
        raise ConfigError(
            f"only {len(held)} held-out sub-networks in the pool band could be drawn "
            f"apart from the scored ones; the evidence needs at least {MIN_HOLDOUT} (widen the "
            "search's --tolerance or change its --width-ratios)"
        )
    raw = score_subnets(
        supernet, encoder, held, calibration, val_loader, finetune.device, progress=progress
    )
    predicted = predictor.predict(held)
    macs = encoder.macs(held).double()
    specs = [space.spec(as_dict(encoder, row)) for row in held]
    syn = torch.tensor([synflow(space, dict(s.widths), config.seed) for s in specs])
    runs = {}
    for offset in (0, 1):
        runs[offset] = [
            delivered_quality(
                supernet,
                s,
                calibration,
                train_loader,
                test_loader,
                teacher,
                finetune,
                distill,
                seed=config.seed + offset,
            )
            for s in tqdm(
                specs, desc=f"fine-tune held-out (seed {offset + 1} of 2)", disable=not progress
            )
        ]
    truth = torch.tensor([-r.loss for r in runs[0]])  # higher = better
    again = torch.tensor([-r.loss for r in runs[1]])
    methods = {"gcn": predicted, "supernet": raw, "macs": macs, "synflow": syn}
    table = {name: rank_correlations(values, truth) for name, values in methods.items()}
    return {
        "table": table,
        "noise_ceiling": rank_correlations(again, truth),
        "holdout": [
            {
                "widths": dict(s.widths),
                "macs": s.macs(),
                "true_loss": runs[0][i].loss,
                "true_acc": runs[0][i].accuracy,
                "true_loss_second_seed": runs[1][i].loss,
                "true_acc_second_seed": runs[1][i].accuracy,
                "gcn": float(predicted[i]),
                "supernet": float(raw[i]),
                "synflow": float(syn[i]),
            }
            for i, s in enumerate(specs)
        ],
    }


def undefined_note(table: Mapping[str, Mapping[str, float]]) -> str | None:
    undefined = [
        name for name, corr in table.items() if not all(math.isfinite(v) for v in corr.values())
    ]
    if not undefined:
        return None
    return (
        f"null: rank correlation undefined for {', '.join(undefined)} (the held-out networks' "
        "quality or that method's scores are all equal)"
    )
