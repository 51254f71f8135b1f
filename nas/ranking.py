"""Ranking sub-networks with a GCN predictor fitted to supernet scores (Chen et al., AAAI 2021).

Scoring a sub-network with inherited supernet weights is cheap but noisy. The predictor smooths
that noise over the whole space:

1. sample ``samples`` sub-networks (uniform over the width choices, or in a MAC band around the
   budget) and score each with the supernet's weights after recalibrating its BN statistics on a
   few training batches (:func:`score_subnets`);
2. fit the GCN (``predictors``) on those scores;
3. predict a pool of up to ``pool`` (10,000) distinct candidates under the budget, with exact MACs
   in ``[target * (1 - tolerance), target]``, keep the ``top_k``, extract each from the supernet
   with BN statistics recalibrated for its own widths, fine-tune it briefly and return the best
   (:func:`select_with_predictor`).

All sampling goes through :class:`WidthSampler`, which reaches any MAC band the width choices can
reach (no rejection sampling over the whole space). :func:`ranking_evidence` measures whether the
predictor is worth it: on held-out sub-networks each trained stand-alone for a short fixed
budget, the rank correlation of the GCN's predictions, the raw supernet scores, MACs alone and the
synflow zero-cost proxy with the stand-alone accuracies.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from nas.errors import ConfigError
from nas.extract import load_model
from nas.io import json_safe, prepare_out_dir, run_output, write_json, write_yaml
from nas.plots import plot_rank_scatter
from nas.search import (
    CALIBRATION_BATCHES,
    SEARCH_CHECKPOINT,
    SEARCH_FORMAT,
    SearchConfig,
    extract_at,
    take_batches,
)
from nas.supernet import Supernet, recalibrate_bn
from nas.train import TrainConfig, evaluate, read_checkpoint, seed_everything, train_model
from nas.workflows import environment, load_search_run, load_supernet, search_data
from predictors import GraphEncoder, Predictor, PredictorConfig, fit_predictor, rank_correlations
from search_spaces import SearchSpace, WidthSpec

SAMPLING = ("uniform", "band")
MIN_SAMPLES = 10  # fewest scored sub-networks the predictor is fitted on
MIN_HOLDOUT = 3  # fewest held-out networks a rank correlation is computed on

# How each RankConfig option is spelled by the command in use: error messages name it. Options a
# command does not expose are described by their meaning (see RankConfig.validate).
RANK_FLAGS: Mapping[str, str] = {
    "samples": "--samples",
    "sampling": "--sampling",
    "band": "--band",
    "pool": "--pool",
    "top_k": "--top-k",
    "topk_epochs": "--topk-epochs",
    "holdout": "--holdout",
    "holdout_epochs": "--holdout-epochs",
    "holdout_lr": "--holdout-lr",
}
SEARCH_FLAGS: Mapping[str, str] = {
    "samples": "--rank-samples",
    "pool": "--rank-pool",
    "top_k": "--rank-top-k",
}
_MEANING = {
    "samples": "sub-networks scored to fit the predictor",
    "sampling": "sampling of the scored sub-networks",
    "band": "relative width of the MAC band the scored sub-networks are sampled in",
    "pool": "candidates the predictor ranks",
    "top_k": "best predicted candidates fine-tuned briefly",
    "topk_epochs": "epochs of the brief fine-tune",
    "holdout": "held-out sub-networks trained stand-alone",
    "holdout_epochs": "stand-alone training epochs of the held-out sub-networks",
    "holdout_lr": "stand-alone training learning rate of the held-out sub-networks",
}


def _option(flags: Mapping[str, str], key: str) -> str:
    """``--flag (meaning)``, or ``the rank option KEY (meaning)`` where no flag sets it."""
    name = flags.get(key)
    return f"{name} ({_MEANING[key]})" if name else f"the rank option {key} ({_MEANING[key]})"


@dataclass
class RankConfig:
    """Knobs of predictor-based selection and of the ranking evidence."""

    samples: int = 200  # sub-networks scored with supernet weights to fit the GCN
    sampling: str = "band"  # "uniform" over the choices or in a MAC "band" around the budget
    band: float = 0.25  # scored sub-networks within target * (1 +- band) MACs
    pool: int = 10_000  # candidates ranked by the predictor, under the budget
    top_k: int = 5  # best predicted candidates fine-tuned briefly
    topk_epochs: int = 3  # brief fine-tuning of each of them
    holdout: int = 24  # held-out sub-networks trained stand-alone (evidence); 0: off
    holdout_epochs: int = 15  # their short fixed training budget
    holdout_lr: float = 0.1  # and its learning rate
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    seed: int = 0

    def validate(self, flags: Mapping[str, str] = RANK_FLAGS) -> None:
        """One-line :class:`ConfigError` for any value that cannot work.

        Messages name each option by its flag in ``flags`` (:data:`RANK_FLAGS` for ``nas rank``,
        :data:`SEARCH_FLAGS` for ``nas search --select predictor``) followed by its meaning;
        an option without a flag there is named ``the rank option KEY (meaning)``.
        """

        def bad(key: str, rule: str, value: object) -> ConfigError:
            return ConfigError(f"{_option(flags, key)} {rule}, got {value}")

        if self.sampling not in SAMPLING:
            raise bad("sampling", "must be uniform or band", repr(self.sampling))
        if self.samples < MIN_SAMPLES:
            raise bad("samples", f"must be at least {MIN_SAMPLES}", self.samples)
        if self.pool < 1:
            raise bad("pool", "must be at least 1", self.pool)
        if not 1 <= self.top_k <= self.pool:
            raise bad("top_k", f"must be between 1 and the pool size {self.pool}", self.top_k)
        if not 0 < self.band < 1:
            raise bad("band", "must be in (0, 1)", self.band)
        if self.topk_epochs < 0:
            raise bad("topk_epochs", "must be >= 0", self.topk_epochs)
        if self.holdout != 0 and self.holdout < MIN_HOLDOUT:
            raise bad(
                "holdout",
                f"must be 0 (off) or at least {MIN_HOLDOUT}: rank correlations of fewer "
                "networks are undefined or meaningless",
                self.holdout,
            )
        if self.holdout_epochs < 1:
            raise bad("holdout_epochs", "must be at least 1", self.holdout_epochs)
        if not (math.isfinite(self.holdout_lr) and self.holdout_lr > 0):
            raise bad("holdout_lr", "must be a positive number", self.holdout_lr)
        try:
            self.predictor.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


# -- sampling --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny tensors (sampling, the GCN's fit): one thread is as fast and never stalls on a busy
    machine, where more threads can be many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class WidthSampler:
    """Distinct width assignments on the grid of width choices: uniform, or in a MAC band.

    Band sampling needs no rejection over the whole space: it lands in narrow bands at any
    budget the grid reaches, and finds every assignment of a small band (the tests compare with
    enumeration near the smallest and the full network). For each candidate, vectorised over a
    batch:

    1. per-unit positions ``t ~ U[0, 1)`` and a MAC level uniform in the band are drawn;
    2. all positions are shifted together by ``s`` (unit index ``floor((t + s) * K)``, clamped to
       the unit's ``K`` choices; ``s = -1`` is the smallest network, ``s = 1`` the full one), and
       ``s`` is bisected to the largest value whose MACs stay under the level (MACs grow with
       ``s``);
    3. random single-unit steps (one choice up or down) are accepted while they keep the candidate
       in the band, or move one that is still under it upwards without passing the band: this
       lands candidates whose last shift step jumped over a narrow band, and mixes the widths.

    MACs are :meth:`GraphEncoder.macs`, the space's one formula, exact on integers. Sampling
    stops once ``n`` distinct assignments are found, or when three successive batches add none:
    the band then holds fewer than ``n`` on the grid (near the smallest network or the full one)
    and all that were found are returned, possibly none.
    """

    batch = 4096
    bisection_steps = 24
    patience = 3
    max_batches = 64

    def __init__(self, encoder: GraphEncoder, choices: Mapping[str, Sequence[int]]) -> None:
        self.encoder = encoder
        names = [u.name for u in encoder.space.units]
        lists = [sorted({int(w) for w in choices[u]}) for u in names]
        widest = max(len(c) for c in lists)
        self.counts = torch.tensor([len(c) for c in lists])
        self.table = torch.tensor([c + [c[-1]] * (widest - len(c)) for c in lists])  # (U, K)
        self._units = torch.arange(len(lists))
        ends = torch.stack([torch.zeros_like(self.counts), self.counts - 1])
        low, high = self._macs(ends).tolist()
        self.min_macs: int = low
        self.max_macs: int = high

    def widths(self, index: Tensor) -> Tensor:
        """Choice indices ``(B, U)`` as widths ``(B, U)``."""
        return self.table[self._units, index]

    def _macs(self, index: Tensor) -> Tensor:
        return self.encoder.macs(self.widths(index))

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        *,
        band: tuple[float, float] | None = None,
        exclude: Tensor | None = None,
    ) -> Tensor:
        """Up to ``n`` distinct widths ``(m, U)`` (int64, ``m <= n``), uniform over the choices
        or with exact MACs in ``band = (low, high)``; none of the rows of ``exclude``."""
        seen = {tuple(r) for r in exclude.tolist()} if exclude is not None else set()
        rows: list[list[int]] = []
        stale = 0
        with _one_thread():
            for _ in range(self.max_batches):
                if len(rows) >= n or stale >= self.patience:
                    break
                size = min(self.batch, max(256, 2 * (n - len(rows))))
                found = len(rows)
                for row in self.widths(self._draw(size, generator, band)).tolist():
                    key = tuple(row)
                    if key not in seen:
                        seen.add(key)
                        rows.append(row)
                        if len(rows) == n:
                            break
                stale = stale + 1 if len(rows) == found else 0
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), len(self.counts))

    def _draw(
        self, size: int, generator: torch.Generator, band: tuple[float, float] | None
    ) -> Tensor:
        """Choice indices of ``size`` draws; with a band, only those that landed in it."""
        u = len(self.counts)
        k = self.counts.double()
        t = torch.rand(size, u, generator=generator, dtype=torch.float64)
        if band is None:
            return (t * k).long()
        low, high = band
        if self.min_macs > high or self.max_macs < low:
            return torch.zeros(0, u, dtype=torch.int64)
        level = low + torch.rand(size, generator=generator, dtype=torch.float64) * (high - low)
        top = self.counts - 1

        def shifted(s: Tensor) -> Tensor:
            return torch.floor((t + s) * k).long().clamp_(min=0).minimum(top)

        below = torch.full((size, 1), -1.0, dtype=torch.float64)  # MACs(below) <= level
        above = torch.ones(size, 1, dtype=torch.float64)
        for _ in range(self.bisection_steps):
            mid = (below + above) / 2
            ok = (self._macs(shifted(mid)) <= level)[:, None]
            below = torch.where(ok, mid, below)
            above = torch.where(ok, above, mid)
        index = shifted(below)
        macs = self._macs(index)
        rows = torch.arange(size)
        for _ in range(max(16, u)):
            unit = torch.randint(u, (size,), generator=generator)
            up_down = torch.randint(2, (size,), generator=generator) * 2 - 1
            step = torch.where(macs < low, 1, up_down)
            moved = index.clone()
            moved[rows, unit] = (index[rows, unit] + step).clamp(min=0).minimum(top[unit])
            new = self._macs(moved)
            accept = (new <= high) & ((new >= low) | (macs < low))
            index = torch.where(accept[:, None], moved, index)
            macs = torch.where(accept, new, macs)
        return index[(macs >= low) & (macs <= high)]


def sample_widths(
    encoder: GraphEncoder,
    choices: Mapping[str, Sequence[int]],
    n: int,
    generator: torch.Generator,
    *,
    band: tuple[float, float] | None = None,
    exclude: Tensor | None = None,
) -> Tensor:
    """Up to ``n`` distinct width assignments (rows of ``(m, U)``, unit order), uniform over the
    choices or with exact MACs in ``band = (low, high)``; see :class:`WidthSampler`."""
    return WidthSampler(encoder, choices).sample(n, generator, band=band, exclude=exclude)


def pool_band(target: float, tolerance: float) -> tuple[float, float]:
    """MACs of the candidates: under the budget, by at most ``tolerance``."""
    return target * (1 - tolerance), target


def scoring_band(target: float, config: RankConfig) -> tuple[float, float] | None:
    """MACs of the scored (and held-out) sub-networks: ``target * (1 +- band)``, or None for
    uniform sampling."""
    if config.sampling != "band":
        return None
    return target * (1 - config.band), target * (1 + config.band)


def sample_pool(
    encoder: GraphEncoder,
    choices: Mapping[str, Sequence[int]],
    target: float,
    tolerance: float,
    config: RankConfig,
) -> Tensor:
    """The candidates the predictor ranks: up to ``config.pool`` distinct assignments with MACs
    in :func:`pool_band` (fewer where the grid holds fewer); refuses a band it cannot reach."""
    sampler = WidthSampler(encoder, choices)
    low, high = pool_band(target, tolerance)
    gen = torch.Generator().manual_seed(config.seed + 1)
    pool = sampler.sample(config.pool, gen, band=(low, high))
    if len(pool) == 0:
        full = encoder.space.macs()
        raise ConfigError(
            f"no sub-network of the width choices has MACs in [{low:,.0f}, {high:,.0f}] "
            f"(at most {tolerance:.1%} under the budget of {target / full:.1%} of full; the "
            f"choices reach {sampler.min_macs / full:.1%}-100%): change the search's "
            "--target-macs, --tolerance or --width-ratios"
        )
    return pool


def check_pool_band(space: SearchSpace, config: SearchConfig) -> None:
    """``nas search --select predictor``: refuse, before any work, a budget whose pool band
    holds no sub-network of the width choices (the search would find out only at its end)."""
    rank = dataclasses.replace(config.rank_config(), pool=1)
    encoder = GraphEncoder.for_space(space)
    sample_pool(encoder, config.choices(space), config.target_for(space), config.tolerance, rank)


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
    input (BN in eval mode at its initial statistics), at a seeded initialisation. The caller's
    global RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
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


def fit_on_supernet(
    supernet: Supernet,
    choices: Mapping[str, Sequence[int]],
    target: float,
    calibration: Sequence[tuple[Tensor, Tensor]],
    val_loader: Iterable[Any],
    config: RankConfig,
    device: torch.device | str,
    progress: bool = True,
    flags: Mapping[str, str] = RANK_FLAGS,
) -> tuple[Predictor, Tensor, Tensor]:
    """Sample and score sub-networks, fit the GCN on the scores."""
    encoder = GraphEncoder.for_space(supernet.space)
    gen = torch.Generator().manual_seed(config.seed)
    widths = sample_widths(encoder, choices, config.samples, gen, band=scoring_band(target, config))
    if len(widths) < MIN_SAMPLES:
        where = (
            f"within {config.band:.0%} of the budget"
            if config.sampling == "band"
            else "on the grid of width choices"
        )
        raise ConfigError(
            f"only {len(widths)} distinct sub-networks lie {where}; the predictor needs at "
            f"least {MIN_SAMPLES} (see {_option(flags, 'band')} and "
            f"{_option(flags, 'sampling')}, or the search's --width-ratios)"
        )
    scores = score_subnets(
        supernet, encoder, widths, calibration, val_loader, device, progress=progress
    )
    with _one_thread():
        predictor = fit_predictor(encoder, widths, scores, config.predictor)
    return predictor, widths, scores


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
    pool: Tensor | None = None,
    progress: bool = True,
    flags: Mapping[str, str] = RANK_FLAGS,
) -> Selection:
    """Fit the GCN on supernet scores, rank a pool under the budget, fine-tune the top-k
    briefly (each extracted with BN statistics recalibrated for its widths) and return the best
    by validation accuracy. Its exact MACs are in ``[target * (1 - tolerance), target]``.

    ``pool``: the candidates from :func:`sample_pool` if the caller drew them already (to refuse
    an unreachable budget before writing anything); ``flags``: how the command in use spells
    the options (:data:`RANK_FLAGS`, :data:`SEARCH_FLAGS`).
    """
    config.validate(flags)
    start = time.perf_counter()
    space = supernet.space
    encoder = GraphEncoder.for_space(space)
    if pool is None:  # drawn first: an unreachable budget is refused before any scoring
        pool = sample_pool(encoder, choices, target, tolerance, config)
    device = finetune.device
    predictor, widths, scores = fit_on_supernet(
        supernet, choices, target, calibration, val_loader, config, device, progress, flags
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
    epochs: int,
) -> float:
    """Validation accuracy of ``spec`` extracted from the supernet (BN statistics recalibrated
    for exactly its widths), after ``epochs`` of fine-tuning."""
    small = extract_at(supernet, spec, calibration).to(finetune.device)
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


def _undefined_note(table: Mapping[str, Mapping[str, float]]) -> str | None:
    undefined = [
        name for name, corr in table.items() if not all(math.isfinite(v) for v in corr.values())
    ]
    if not undefined:
        return None
    return (
        f"null: rank correlation undefined for {', '.join(undefined)} (the held-out stand-alone "
        "accuracies or that method's scores are all equal)"
    )


# -- nas rank ------------------------------------------------------------------------------------
def check_search_finished(run: Path, config: SearchConfig) -> None:
    """Refuse a run whose search checkpoint stops before the last search epoch."""
    state = read_checkpoint(run / SEARCH_CHECKPOINT, SEARCH_FORMAT, "search")
    done, total = len(state.get("records", [])), config.warmup_epochs + config.search_epochs
    if done < total:
        raise ConfigError(
            f"the search in {run} has not finished ({done} of {total} epochs in "
            f"{SEARCH_CHECKPOINT}); complete it first with nas search --resume --out {run}"
        )


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

    Everything is checked (run, finished search, output directory, reachable budget) before
    anything is written. Writes into ``out_dir`` (default ``RUN/rank``): ``args.yaml``,
    ``predictor.pt``, ``selection.json``, ``arch.json`` (the selected spec),
    ``rank_metrics.json`` and ``rank_scatter.png``; a run stopped by an error leaves none.
    """
    config.validate()
    run = Path(run_dir)
    options, search_config = load_search_run(run)
    check_search_finished(run, search_config)
    out = prepare_out_dir(Path(out_dir) if out_dir else run / "rank", overwrite=overwrite)
    data, space = search_data(options, search_config.seed)
    assert data.val is not None  # search_data refuses data without a validation split
    supernet, strategy = load_supernet(run, space, search_config)
    target = search_config.target_for(space)
    encoder = GraphEncoder.for_space(space)
    pool = sample_pool(encoder, strategy.choices, target, search_config.tolerance, config)
    teacher = load_model(run / "baseline") if (run / "baseline" / "arch.json").is_file() else None
    calibration = take_batches(data.train, CALIBRATION_BATCHES)
    with run_output(out, overwrite=overwrite):
        write_yaml(
            out / "args.yaml",
            {"command": "rank", "run": str(run), **asdict(config), "environment": environment()},
        )
        start = time.perf_counter()
        selection = select_with_predictor(
            supernet,
            strategy.choices,
            target,
            search_config.tolerance,
            calibration,
            data.train,
            data.val,
            teacher if search_config.kd_alpha > 0 else None,
            search_config.finetune_config(),
            config,
            pool=pool,
            progress=progress,
        )
        selection.predictor.save(out / "predictor.pt")
        selection.spec.save(out / "arch.json")
        write_json(out / "selection.json", selection.summary())
        metrics: dict[str, Any] = {
            "space": space.name,
            "target_macs": target,
            "target_macs_ratio": target / space.macs(),
            "tolerance": search_config.tolerance,
            "selected_macs": selection.spec.macs(),
            "selected_macs_ratio": selection.spec.macs_ratio(),
            "selected_val_acc": max(c["val_acc"] for c in selection.candidates),
            "sampling": config.sampling,
            "samples": config.samples,
            "samples_scored": len(selection.sample_scores),
            "pool": config.pool,
            "pool_ranked": selection.pool_size,
            "top_k": config.top_k,
            "select_seconds": round(selection.seconds, 2),
        }
        if config.holdout > 0:
            standalone = TrainConfig(
                epochs=config.holdout_epochs,
                lr=config.holdout_lr,
                seed=config.seed,
                device=search_config.device,
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
                exclude=selection.sample_widths,
                progress=progress,
            )
            note = _undefined_note(evidence["table"])
            metrics |= {
                "correlations": evidence["table"],
                **({"correlations_note": note} if note else {}),
                "holdout": evidence["holdout"],
                "holdout_epochs": config.holdout_epochs,
                "holdout_lr": config.holdout_lr,
            }
            plot_rank_scatter(evidence, out / "rank_scatter.png")
        metrics["seconds"] = round(time.perf_counter() - start, 2)
        metrics = json_safe(metrics)
        write_json(out / "rank_metrics.json", metrics)
        return metrics
