"""Is the predictor worth it? Rank correlations with stand-alone accuracy on held-out
sub-networks, for the GCN, the raw supernet scores, MACs alone and the synflow proxy."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from nas.engine import TrainConfig, evaluate, seed_everything, train_model
from nas.errors import ConfigError
from nas.selection.config import MIN_HOLDOUT, RankConfig
from nas.selection.predictor import _loader_restore, _loader_snapshot
from nas.selection.proxies import synflow
from nas.selection.sampler import as_dict, sample_widths, scoring_band
from nas.selection.scoring import score_subnets
from nas.supernet import Supernet
from predictors import Predictor, rank_correlations
from search_spaces import WidthSpec

__all__ = ["ranking_evidence", "standalone_accuracy", "undefined_note"]


# -- evidence ------------------------------------------------------------------------------------
def standalone_accuracy(
    spec: WidthSpec, train_loader: Any, test_loader: Iterable[Any], config: TrainConfig
) -> float:
    """Test accuracy of the spec's network trained from scratch for ``config.epochs``."""
    seed_everything(config.seed)
    net = spec.get_space().build(spec.widths)
    snapshot = _loader_snapshot(train_loader)
    train_model(net, train_loader, config=config, progress=False)
    _loader_restore(train_loader, snapshot)
    return evaluate(net, test_loader, device=config.device).accuracy


def ranking_evidence(
    supernet: Supernet,
    predictor: Predictor,
    choices: Mapping[str, Sequence[int]],
    target: float,
    calibration: Sequence[tuple[Tensor, Tensor]],
    train_loader: Any,
    val_loader: Iterable[Any],
    test_loader: Iterable[Any],
    train_config: TrainConfig,
    config: RankConfig,
    *,
    exclude: Tensor | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Rank correlations with stand-alone accuracy on held-out sub-networks (sampled like the
    scored ones, none of ``exclude``), per method. A correlation is NaN where it is undefined
    (constant accuracies or scores); :func:`json_safe` turns it into null."""
    encoder = predictor.encoder
    space = supernet.space
    gen = torch.Generator().manual_seed(config.seed + 2)
    held = sample_widths(
        encoder, choices, config.holdout, gen, band=scoring_band(target, config), exclude=exclude
    )
    if len(held) < MIN_HOLDOUT:
        raise ConfigError(
            f"only {len(held)} held-out sub-networks could be drawn apart from the scored ones; "
            f"the evidence needs at least {MIN_HOLDOUT} (use --sampling uniform or a wider --band)"
        )
    raw = score_subnets(
        supernet, encoder, held, calibration, val_loader, train_config.device, progress=progress
    )
    predicted = predictor.predict(held)
    macs = encoder.macs(held).double()
    specs = [space.spec(as_dict(encoder, row)) for row in held]
    syn = torch.tensor([synflow(space, dict(s.widths), config.seed) for s in specs])
    truth = torch.tensor(
        [
            standalone_accuracy(s, train_loader, test_loader, train_config)
            for s in tqdm(specs, desc="stand-alone training", disable=not progress)
        ]
    )
    methods = {"gcn": predicted, "supernet": raw, "macs": macs, "synflow": syn}
    table = {name: rank_correlations(values, truth) for name, values in methods.items()}
    return {
        "table": table,
        "holdout": [
            {
                "widths": dict(s.widths),
                "macs": s.macs(),
                "true_acc": float(truth[i]),
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
        f"null: rank correlation undefined for {', '.join(undefined)} (the held-out stand-alone "
        "accuracies or that method's scores are all equal)"
    )
