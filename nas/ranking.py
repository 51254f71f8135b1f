"""Ranking sub-networks with a GCN predictor fitted to supernet scores (Chen et al., AAAI 2021).

Scoring a sub-network with inherited supernet weights is cheap but noisy. The predictor smooths
that noise over the whole space:

1. sample ``samples`` sub-networks (uniform over the width choices, or in a MAC band around the
   budget) and score each with the supernet's weights after recalibrating its BN statistics on a
   few training batches (:func:`score_subnets`);
2. fit the GCN (``predictors``) on those scores;
3. predict a pool of at least 10,000 candidates within the budget, keep the ``top_k``, fine-tune
   each briefly and return the best (:func:`select_with_predictor`).

:func:`ranking_evidence` measures whether this is worth it: on held-out sub-networks each trained
stand-alone for a short fixed budget, the rank correlation of the GCN's predictions, the raw
supernet scores, MACs alone and the synflow zero-cost proxy with the stand-alone accuracies.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import search_spaces
from nas.errors import ConfigError
from nas.extract import extract, load_model
from nas.io import prepare_out_dir, write_json, write_yaml
from nas.plots import plot_rank_scatter
from nas.search import CALIBRATION_BATCHES, take_batches
from nas.supernet import Supernet, recalibrate_bn
from nas.train import TrainConfig, evaluate, seed_everything, train_model
from nas.workflows import environment, load_search_run, load_supernet
from predictors import GraphEncoder, Predictor, PredictorConfig, fit_predictor, rank_correlations
from search_spaces import SearchSpace, WidthSpec

SAMPLING = ("uniform", "band")


@dataclass
class RankConfig:
    """Knobs of predictor-based selection and of the ranking evidence."""

    samples: int = 200  # sub-networks scored with supernet weights to fit the GCN
    sampling: str = "band"  # "uniform" over the choices or in a MAC "band" around the budget
    band: float = 0.25  # relative width of the sampling band around the budget
    pool: int = 10_000  # candidates ranked by the predictor
    top_k: int = 5  # best predicted candidates fine-tuned briefly
    topk_epochs: int = 3  # brief fine-tuning of each of them
    holdout: int = 24  # held-out sub-networks trained stand-alone (evidence)
    holdout_epochs: int = 15  # their short fixed training budget
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    seed: int = 0

    def validate(self) -> None:
        if self.sampling not in SAMPLING:
            raise ConfigError(f"unknown sampling {self.sampling!r}; choose uniform or band")
        if self.samples < 10:
            raise ConfigError(f"--samples must be at least 10, got {self.samples}")
        if self.pool < 1 or self.top_k < 1 or self.top_k > self.pool:
            raise ConfigError("need 1 <= --top-k <= --pool")
        if not 0 < self.band < 1:
            raise ConfigError(f"--band must be in (0, 1), got {self.band}")
        if self.holdout < 0 or self.holdout_epochs < 1 or self.topk_epochs < 0:
            raise ConfigError("need --holdout >= 0, --holdout-epochs >= 1, --topk-epochs >= 0")
        try:
            self.predictor.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


# -- sampling --------------------------------------------------------------------------------------
def sample_widths(
    encoder: GraphEncoder,
    choices: dict[str, list[int]],
    n: int,
    generator: torch.Generator,
    *,
    target: float | None = None,
    band: float = 0.25,
) -> Tensor:
    """``n`` distinct width assignments (rows of ``(n, U)``), uniform over the choices or, with a
    ``target``, uniform over those whose exact MACs are within ``target * (1 +- band)``."""
    units = [u.name for u in encoder.space.units]
    table = [torch.tensor(choices[u]) for u in units]
    rows: list[Tensor] = []
    seen: set[tuple[int, ...]] = set()
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > 200:
            raise ConfigError(
                f"could not sample {n} distinct sub-networks within the MAC band; "
                "widen --band or lower --samples/--pool"
            )
        batch = torch.stack(
            [t[torch.randint(len(t), (8192,), generator=generator)] for t in table], dim=1
        )
        if target is not None:
            macs = encoder.macs(batch)
            batch = batch[(macs >= target * (1 - band)) & (macs <= target * (1 + band))]
        for row in batch:
            key = tuple(int(v) for v in row)
            if key not in seen:
                seen.add(key)
                rows.append(row)
                if len(rows) == n:
                    break
    return torch.stack(rows)


def as_dict(encoder: GraphEncoder, row: Tensor) -> dict[str, int]:
    return {u.name: int(w) for u, w in zip(encoder.space.units, row, strict=True)}


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
    """Validation accuracy (percent) of each sub-network with the supernet's weights, each after
    recalibrating BN statistics on ``calibration`` batches."""
    scores = []
    for row in tqdm(widths, desc="score sub-networks", disable=not progress, leave=False):
        supernet.set_widths(as_dict(encoder, row))
        recalibrate_bn(supernet, calibration, device)
        scores.append(evaluate(supernet, val_loader, device=device).accuracy)
    supernet.set_masks(None)
    return torch.tensor(scores)


def synflow(space: SearchSpace, widths: dict[str, int], seed: int = 0) -> float:
    """SynFlow (Tanaka et al. 2020), a data-free zero-cost proxy: the sum over parameters of
    |theta * dR/dtheta| with R the summed output of the network with |weights| on an all-ones
    input (BN in eval mode at its initial statistics), at a seeded initialisation."""
    torch.manual_seed(seed)
    net = space.build(widths).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    x = torch.ones(1, space.in_channels, *space.input_size, dtype=torch.float64)
    net.zero_grad(set_to_none=True)
    net(x).sum().backward()
    with torch.no_grad():
        return float(sum((p * p.grad).abs().sum() for p in net.parameters() if p.grad is not None))


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


def fit_on_supernet(
    supernet: Supernet,
    choices: dict[str, list[int]],
    target: float,
    calibration: Sequence[tuple[Tensor, Tensor]],
    val_loader: Iterable[Any],
    config: RankConfig,
    device: torch.device | str,
    progress: bool = True,
) -> tuple[Predictor, Tensor, Tensor]:
    """Sample and score sub-networks, fit the GCN on the scores."""
    encoder = GraphEncoder.for_space(supernet.space)
    gen = torch.Generator().manual_seed(config.seed)
    band_target = target if config.sampling == "band" else None
    widths = sample_widths(
        encoder, choices, config.samples, gen, target=band_target, band=config.band
    )
    scores = score_subnets(
        supernet, encoder, widths, calibration, val_loader, device, progress=progress
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is as fast, and never stalls
    try:
        predictor = fit_predictor(encoder, widths, scores, config.predictor)
    finally:
        torch.set_num_threads(threads)
    return predictor, widths, scores


def select_with_predictor(
    supernet: Supernet,
    choices: dict[str, list[int]],
    target: float,
    tolerance: float,
    calibration: Sequence[tuple[Tensor, Tensor]],
    train_loader: Any,
    val_loader: Iterable[Any],
    teacher: nn.Module | None,
    finetune: TrainConfig,
    config: RankConfig,
    *,
    progress: bool = True,
) -> Selection:
    """Fit the GCN on supernet scores, rank a pool within the budget, fine-tune the top-k
    briefly (from the supernet's weights) and return the best by validation accuracy."""
    config.validate()
    start = time.perf_counter()
    device = finetune.device
    predictor, widths, scores = fit_on_supernet(
        supernet, choices, target, calibration, val_loader, config, device, progress
    )
    encoder = predictor.encoder
    gen = torch.Generator().manual_seed(config.seed + 1)
    pool = sample_widths(encoder, choices, config.pool, gen, target=target, band=tolerance)
    predicted = predictor.predict(pool)
    top = torch.argsort(predicted, descending=True)[: config.top_k]
    candidates: list[dict[str, Any]] = []
    state = supernet.model.state_dict()
    space = supernet.space
    for rank, i in enumerate(top.tolist(), start=1):
        spec = space.spec(as_dict(encoder, pool[i]))
        acc = _brief_finetune(
            state, spec, train_loader, val_loader, teacher, finetune, config.topk_epochs
        )
        candidates.append(
            {
                "rank": rank,
                "predicted": float(predicted[i]),
                "val_acc": acc,
                "macs": spec.macs(),
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
    )


def _brief_finetune(
    state: dict[str, Tensor],
    spec: WidthSpec,
    train_loader: Any,
    val_loader: Iterable[Any],
    teacher: nn.Module | None,
    finetune: TrainConfig,
    epochs: int,
) -> float:
    small = extract(state, spec)
    if epochs > 0:
        loader_state = _loader_snapshot(train_loader)
        cfg = TrainConfig(**{**asdict(finetune), "epochs": epochs})
        train_model(small, train_loader, config=cfg, teacher=teacher, progress=False)
        _loader_restore(train_loader, loader_state)
    return evaluate(small, val_loader, device=finetune.device).accuracy


def _loader_snapshot(loader: Any) -> Any:
    """Brief fine-tunes must not shift the data order of what follows them."""
    return copy.deepcopy(loader.state_dict()) if hasattr(loader, "state_dict") else None


def _loader_restore(loader: Any, state: Any) -> None:
    if state is not None:
        loader.load_state_dict(state)


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
    choices: dict[str, list[int]],
    target: float,
    calibration: Sequence[tuple[Tensor, Tensor]],
    train_loader: Any,
    val_loader: Iterable[Any],
    test_loader: Iterable[Any],
    train_config: TrainConfig,
    config: RankConfig,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Rank correlations with stand-alone accuracy on held-out sub-networks, per method."""
    encoder = predictor.encoder
    space = supernet.space
    gen = torch.Generator().manual_seed(config.seed + 2)
    band_target = target if config.sampling == "band" else None
    held = sample_widths(
        encoder, choices, config.holdout, gen, target=band_target, band=config.band
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


# -- nas rank ------------------------------------------------------------------------------------
def run_rank(
    run_dir: str | Path,
    config: RankConfig,
    *,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """``nas rank``: fit the GCN predictor on a finished search's supernet, select the best of
    its top-k, and (with ``holdout > 0``) measure the ranking against stand-alone training.

    Writes into ``out_dir`` (default ``RUN/rank``): ``predictor.pt``, ``selection.json``,
    ``arch.json`` (the selected spec), ``rank_metrics.json`` and ``rank_scatter.png``.
    """
    from nas.ranking import ranking_evidence, select_with_predictor

    config.validate()
    run = Path(run_dir)
    options, search_config = load_search_run(run)
    out = prepare_out_dir(Path(out_dir) if out_dir else run / "rank", overwrite=overwrite)
    data = options.load(search_config.seed)
    space = search_spaces.create(
        options.space,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    if data.val is None:
        raise ConfigError("ranking needs a validation split: the run has --val-fraction 0")
    supernet, strategy = load_supernet(run, space, search_config)
    teacher = load_model(run / "baseline") if (run / "baseline" / "arch.json").is_file() else None
    calibration = take_batches(data.train, CALIBRATION_BATCHES)
    target = search_config.target_for(space)
    finetune = search_config.finetune_config()
    selection = select_with_predictor(
        supernet,
        strategy.choices,
        target,
        search_config.tolerance,
        calibration,
        data.train,
        data.val,
        teacher if search_config.kd_alpha > 0 else None,
        finetune,
        config,
        progress=progress,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(
        out / "args.yaml",
        {"command": "rank", "run": str(run), **asdict(config), "environment": environment()},
    )
    selection.predictor.save(out / "predictor.pt")
    selection.spec.save(out / "arch.json")
    write_json(
        out / "selection.json",
        {"candidates": selection.candidates, "seconds": round(selection.seconds, 2)},
    )
    metrics: dict[str, Any] = {
        "space": space.name,
        "selected_macs": selection.spec.macs(),
        "selected_macs_ratio": selection.spec.macs_ratio(),
        "selected_val_acc": max(c["val_acc"] for c in selection.candidates),
        "samples": config.samples,
        "pool": config.pool,
        "top_k": config.top_k,
    }
    if config.holdout > 0:
        standalone = TrainConfig(
            epochs=config.holdout_epochs, lr=0.1, seed=config.seed, device=search_config.device
        )
        evidence = ranking_evidence(
            supernet,
            selection.predictor,
            strategy.choices,
            target,
            calibration,
            data.train,
            data.val,
            data.test,
            standalone,
            config,
            progress=progress,
        )
        metrics |= {
            "correlations": evidence["table"],
            "holdout": evidence["holdout"],
            "holdout_epochs": config.holdout_epochs,
        }
        plot_rank_scatter(evidence, out / "rank_scatter.png")
    write_json(out / "rank_metrics.json", metrics)
    return metrics
