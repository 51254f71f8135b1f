"""Differentiable width search: a Gumbel-softmax supernet under a MAC budget.

The search (:func:`search_widths`) is first-order bi-level, as in DARTS and TAS:

1. the channels of every unit are put in importance order (function-preserving), so a width
   choice ``c`` keeps the ``c`` strongest channels;
2. warm-up epochs train the weights alone, each step at random widths (hard samples from the
   uniform initial distribution), so every width is trained before it is judged;
3. search epochs alternate a weight step on a training batch and an architecture step on a
   validation batch, with masks from the gate strategy at the annealed temperature; the
   architecture loss is the validation cross-entropy plus the budget loss on the expected MACs;
4. the argmax widths are projected onto the budget (exact MACs within ``tolerance``).

:func:`search` wraps it for Python users (their own trained network and loaders): search, extract
the chosen network from the supernet, fine-tune it with distillation from the full network (or
retrain it from scratch), and report the numbers. ``nas search`` on the command line
(:func:`nas.workflows.run_search`) adds data loading, the baseline, files and resuming.
"""

from __future__ import annotations

import copy
import math
import numbers
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from nas.budget import (
    SCHEDULES,
    budget_loss,
    parse_target_macs,
    project_to_budget,
    smallest_macs,
    temperature,
)
from nas.errors import ConfigError
from nas.extract import channel_order, extract, permute_channels
from nas.io import atomic_torch_save, atomic_write_text
from nas.strategies import GateStrategy, check_strategy, create_strategy
from nas.supernet import DEFAULT_WIDTH_RATIOS, Supernet, recalibrate_bn, width_choices
from nas.train import (
    TrainConfig,
    evaluate,
    loader_state,
    make_optimizer,
    make_scheduler,
    read_checkpoint,
    restore_loader,
    restore_rng,
    rng_state,
    seed_everything,
    train_model,
)
from search_spaces import SearchSpace, WidthSpec

if TYPE_CHECKING:
    from nas.ranking import RankConfig  # nas.ranking imports this module

SEARCH_CHECKPOINT = "search_checkpoint.pt"
SEARCH_SUMMARY = "summary.csv"
SEARCH_FORMAT = "channel-nas/search-checkpoint-1"
CALIBRATION_BATCHES = 4
# Narrowest accepted --tolerance. The projection lands in the band whenever some widths do; the
# exact MACs of a space move in steps (ResNet-20: 55,296 MACs per channel of a stage-3 unit,
# 18,432 for two units together), so a band much narrower than that can hold no network at all.
# At 0.005 the band of a ResNet-20 target at its smallest (11.5 % of full) is 2.5 two-unit steps
# wide; random starts on resnet20/20_b/56/56_b/18 at targets down to the smallest and coarse
# width ratios all landed (tests/nas/test_budget.py checks it).
MIN_TOLERANCE = 0.005


@dataclass
class SearchConfig:
    """Every knob of a search. Defaults: the main job (ResNet-20 on digits at 50 % MACs)."""

    target_macs: str = "0.5"  # ratio of the full network ("0.5") or absolute ("60M")
    strategy: str = "width-gumbel"
    width_ratios: tuple[float, ...] = DEFAULT_WIDTH_RATIOS
    width_multiple: int = 1  # width choices rounded to multiples of this (8: hardware-friendly)
    tau0: float = 5.0
    tau_min: float = 0.1
    schedule: str = "exponential"
    hard: bool = False  # straight-through hard samples in the search epochs
    warmup_epochs: int = 10
    search_epochs: int = 20
    lr: float = 0.05  # weights, SGD + cosine over warm-up and search
    momentum: float = 0.9
    weight_decay: float = 5e-4
    arch_lr: float = 0.05  # architecture parameters, Adam
    arch_weight_decay: float = 1e-3
    budget_weight: float = 2.0
    budget_band: float = 0.05  # budget loss idles while the argmax net is this much under
    tolerance: float = 0.02  # final exact MACs within target * (1 +- tolerance)
    order: str = "l1"  # channel importance before the search: l1, bn or first
    finetune_epochs: int = 30
    finetune_lr: float = 0.05
    kd_alpha: float = 0.9  # 0 = no distillation
    kd_temperature: float = 4.0
    from_scratch: bool = False
    select: str = "argmax"  # "argmax" (projected) or "predictor" (GCN ranking, nas.ranking)
    rank_samples: int = 200  # sub-networks scored with supernet weights to fit the GCN
    rank_pool: int = 10_000  # candidates the GCN ranks
    rank_top_k: int = 5  # best predicted candidates fine-tuned briefly
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """One-line :class:`ConfigError`, naming the ``nas search`` flag, for any value that
        cannot work: checked before anything is written or trained. Types first (values from
        ``--config`` files and Python callers are not parsed by the command line), then ranges;
        NaN and infinities are refused everywhere."""
        self._check_types()
        check_strategy(self.strategy)
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown --schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if self.select not in ("argmax", "predictor"):
            raise ConfigError(f"unknown --select {self.select!r}; choose argmax or predictor")
        if self.order not in ("l1", "bn", "first"):
            raise ConfigError(f"unknown --order {self.order!r}; choose l1, bn or first")
        if not all(0 < r <= 1 for r in self.width_ratios):
            raise ConfigError(
                f"--width-ratios must lie in (0, 1], got {', '.join(map(str, self.width_ratios))}"
            )
        if not 0 < self.tau_min <= self.tau0:
            raise ConfigError(
                f"need 0 < --tau-min <= --tau0, got --tau-min {self.tau_min} and --tau0 {self.tau0}"
            )
        checks = [
            (self.warmup_epochs >= 0, "--warmup-epochs", ">= 0"),
            (self.search_epochs >= 1, "--search-epochs", ">= 1"),
            (self.width_multiple >= 1, "--width-multiple", ">= 1"),
            (self.finetune_epochs >= 0, "--finetune-epochs", ">= 0"),
            (self.lr > 0, "--lr", "> 0"),
            (self.arch_lr > 0, "--arch-lr", "> 0"),
            (self.finetune_lr > 0, "--finetune-lr", "> 0"),
            (0 <= self.momentum < 1, "--momentum", "in [0, 1)"),
            (self.weight_decay >= 0, "--weight-decay", ">= 0"),
            (self.arch_weight_decay >= 0, "--arch-weight-decay", ">= 0"),
            (self.budget_weight >= 0, "--budget-weight", ">= 0"),
            (0 < self.budget_band < 1, "--budget-band", "in (0, 1)"),
            (
                MIN_TOLERANCE <= self.tolerance < 1,
                "--tolerance",
                f"in [{MIN_TOLERANCE}, 1) (a narrower band is not always reachable)",
            ),
            (0 <= self.kd_alpha <= 1, "--kd-alpha", "in [0, 1]"),
            (self.kd_temperature > 0, "--kd-temperature", "> 0"),
        ]
        for ok, flag, allowed in checks:
            if not ok:
                value = getattr(self, flag[2:].replace("-", "_"))
                raise ConfigError(f"{flag} must be {allowed}, got {value}")
        if self.from_scratch and self.finetune_epochs == 0:
            raise ConfigError(
                "--from-scratch needs --finetune-epochs >= 1 (with 0 the found network would "
                "keep its random initialisation)"
            )
        if self.select == "predictor":
            self._check_ranking()
        self.finetune_config().validate()

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            kind = _FIELD_KINDS[f.name]
            if kind == "int":
                ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
                if ok and f.name == "seed":
                    ok = -(2**63) <= value < 2**63
                what = "an integer" + (" in [-2^63, 2^63)" if f.name == "seed" else "")
            elif kind == "real":
                ok = _is_finite_real(value)
                what = "a finite number"
            elif kind == "bool":
                ok, what = isinstance(value, bool), "true or false"
            elif kind == "target":
                ok = isinstance(value, str) or _is_finite_real(value)
                what = "a ratio like 0.5 or MACs like 60M"
            elif kind == "ratios":
                ok = (
                    isinstance(value, Sequence)
                    and not isinstance(value, str)
                    and len(value) > 0
                    and all(_is_finite_real(r) for r in value)
                )
                what = "a non-empty list of numbers in (0, 1]"
            else:
                ok, what = isinstance(value, str), "a string"
            if not ok:
                raise ConfigError(f"{flag} must be {what}, got {value!r}")

    def _check_ranking(self) -> None:
        """``--select predictor``: the ranking options, checked as ``nas rank`` checks them."""
        from nas.ranking import SEARCH_FLAGS  # nas.ranking imports this module

        try:
            self.rank_config().validate(SEARCH_FLAGS)
        except ConfigError as exc:
            raise ConfigError(f"--select predictor: {exc}") from None

    def rank_config(self) -> RankConfig:
        """The GCN ranking options of ``--select predictor`` (the rest at their defaults)."""
        from nas.ranking import RankConfig

        return RankConfig(
            samples=self.rank_samples, pool=self.rank_pool, top_k=self.rank_top_k, seed=self.seed
        )

    def finetune_config(self) -> TrainConfig:
        """Training options of the fine-tuning (or retraining) of the found network."""
        return self.weight_config(max(1, self.finetune_epochs), self.finetune_lr)

    def weight_config(self, epochs: int, lr: float) -> TrainConfig:
        """SGD options for the network weights (search or fine-tuning phase)."""
        return TrainConfig(
            epochs=epochs,
            lr=lr,
            momentum=self.momentum,
            nesterov=self.momentum > 0,  # plain SGD at --momentum 0
            weight_decay=self.weight_decay,
            kd_alpha=self.kd_alpha,
            kd_temperature=self.kd_temperature,
            seed=self.seed,
            device=self.device,
        )

    def choices(self, space: SearchSpace) -> dict[str, list[int]]:
        return {
            u.name: width_choices(u.max_width, self.width_ratios, self.width_multiple)
            for u in space.units
        }

    def target_for(self, space: SearchSpace) -> float:
        """The target in MACs; refuses targets the width choices cannot reach."""
        target = parse_target_macs(self.target_macs, space.macs())
        floor = smallest_macs(space, self.choices(space))
        if target < floor * (1 - self.tolerance):
            raise ConfigError(
                f"--target-macs {self.target_macs} ({target:,.0f} MACs) is below the smallest "
                f"network the width choices allow ({floor:,} MACs, "
                f"{floor / space.macs():.1%} of full); lower the smallest width ratio"
            )
        return target


_FIELD_KINDS: dict[str, str] = {
    "target_macs": "target",
    "width_ratios": "ratios",
    **dict.fromkeys(("strategy", "schedule", "order", "select", "device"), "str"),
    **dict.fromkeys(("hard", "from_scratch"), "bool"),
    **dict.fromkeys(
        (
            "width_multiple",
            "warmup_epochs",
            "search_epochs",
            "finetune_epochs",
            "rank_samples",
            "rank_pool",
            "rank_top_k",
            "seed",
        ),
        "int",
    ),
    **dict.fromkeys(
        (
            "tau0",
            "tau_min",
            "lr",
            "momentum",
            "weight_decay",
            "arch_lr",
            "arch_weight_decay",
            "budget_weight",
            "budget_band",
            "tolerance",
            "finetune_lr",
            "kd_alpha",
            "kd_temperature",
        ),
        "real",
    ),
}


def _is_finite_real(value: object) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


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
    val_acc: float
    seconds: float


@dataclass
class SearchOutcome:
    """What the search found, before fine-tuning."""

    spec: WidthSpec
    supernet: Supernet
    strategy: GateStrategy
    argmax_widths: dict[str, int]
    relaxed_acc: float
    discrete_acc: float
    calibration: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    records: list[SearchRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def relaxation_gap(self) -> float:
        """Validation accuracy of the relaxed network minus that of the discretised one."""
        return self.relaxed_acc - self.discrete_acc


# -- the search --------------------------------------------------------------------------------
def search_widths(
    model: nn.Module,
    space: SearchSpace,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any],
    *,
    config: SearchConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    warmup: str | Path | None = None,
    progress: bool = True,
) -> SearchOutcome:
    """Search widths for ``space`` starting from the trained full ``model`` (left untouched).

    With ``out_dir`` a checkpoint is written after every epoch (``search_checkpoint.pt``) and
    the per-epoch summary to ``summary.csv``; ``resume=True`` continues from the
    checkpoint to the same result as an uninterrupted run. ``warmup`` is a shared warm-up
    (:func:`warm_up`, same model, loaders and warm-up options): the search starts after it, with
    the same result as if it had run the warm-up itself.
    """
    run = _start_run(model, space, train_loader, val_loader, config)
    ckpt = Path(out_dir) / SEARCH_CHECKPOINT if out_dir is not None else None
    if resume and ckpt is not None and ckpt.is_file():
        run.load(ckpt)
    elif warmup is not None:
        run.warm_start(Path(warmup))
    summary = Path(out_dir) / SEARCH_SUMMARY if out_dir is not None else None
    _run_epochs(run, run.total_epochs, ckpt, summary, "search", progress)
    return run.finish(space)


def warm_up(
    model: nn.Module,
    space: SearchSpace,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any],
    *,
    config: SearchConfig,
    path: str | Path,
    progress: bool = True,
) -> Path:
    """Run only the warm-up epochs of a search and checkpoint them to ``path`` (resumable).

    Warm-up epochs train the weights alone at uniformly drawn widths, so searches that differ
    only in :data:`WARMUP_INDEPENDENT` options (target, temperatures, architecture optimiser,
    budget loss) can all start from this one (``search_widths(..., warmup=path)``): ``nas sweep``
    warms up once for all its trials.
    """
    path = Path(path)
    run = _start_run(model, space, train_loader, val_loader, config)
    if path.is_file():
        run.load(path)
    _run_epochs(run, config.warmup_epochs, path, None, "warm-up", progress)
    return path


def _start_run(
    model: nn.Module,
    space: SearchSpace,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any],
    config: SearchConfig,
) -> _SearchRun:
    config.validate()
    target = config.target_for(space)
    device = torch.device(config.device)
    seed_everything(config.seed)
    choices = config.choices(space)
    supernet, strategy = _build_supernet(model, space, config, choices, device)
    return _SearchRun(supernet, strategy, config, target, train_loader, val_loader, device)


def _run_epochs(
    run: _SearchRun,
    until: int,
    ckpt: Path | None,
    summary: Path | None,
    desc: str,
    progress: bool,
) -> None:
    """Epochs of ``run`` until it has ``until`` records, checkpointing after each one."""
    start = time.perf_counter() - run.seconds
    with tqdm(
        total=until,
        initial=min(len(run.records), until),
        desc=desc,
        unit="epoch",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        while len(run.records) < until:
            record = run.epoch(len(run.records) + 1)
            run.seconds = time.perf_counter() - start
            bar.update(1)
            bar.set_postfix(
                tau=f"{record.tau:.2f}",
                macs=f"{record.argmax_macs_ratio:.2f}",
                val_acc=f"{record.val_acc:.1f}",
                refresh=False,
            )
            if summary is not None:
                write_search_summary(summary, run.records)
            if ckpt is not None:
                atomic_torch_save(run.state(), ckpt)


def _build_supernet(
    model: nn.Module,
    space: SearchSpace,
    config: SearchConfig,
    choices: dict[str, list[int]],
    device: torch.device,
) -> tuple[Supernet, GateStrategy]:
    net = copy.deepcopy(model).to(device)
    net.eval()
    permute_channels(net, space, channel_order(net, space, config.order))
    supernet = Supernet(net, space)
    strategy = create_strategy(config.strategy, space, choices).to(device)
    strategy.attach(supernet)
    return supernet, strategy


class _SearchRun:
    """State of one search: optimisers, schedules, records; one method per epoch."""

    def __init__(
        self,
        supernet: Supernet,
        strategy: GateStrategy,
        config: SearchConfig,
        target: float,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any],
        device: torch.device,
    ) -> None:
        self.supernet, self.strategy, self.config = supernet, strategy, config
        self.target, self.device = target, device
        self.train_loader, self.val_loader = train_loader, val_loader
        self.steps = len(train_loader)  # type: ignore[arg-type]
        if self.steps < 1:
            raise ConfigError("the training loader is empty")
        self.total_epochs = config.warmup_epochs + config.search_epochs
        wconf = config.weight_config(self.total_epochs, config.lr)
        self.w_opt = make_optimizer(supernet.weights(), wconf)
        self.w_sched = make_scheduler(self.w_opt, wconf, self.steps)
        self.a_opt = torch.optim.Adam(
            strategy.arch_parameters(),
            lr=config.arch_lr,
            betas=(0.5, 0.999),
            weight_decay=config.arch_weight_decay,
        )
        self.full_macs = supernet.space.macs()
        self.calibration = take_batches(train_loader, CALIBRATION_BATCHES)
        self.records: list[SearchRecord] = []
        self.seconds = 0.0

    def tau(self, epoch: int, step: int) -> float:
        c = self.config
        if epoch <= c.warmup_epochs:
            return c.tau0
        done = (epoch - c.warmup_epochs - 1) * self.steps + step
        return temperature(done, c.search_epochs * self.steps, c.tau0, c.tau_min, c.schedule)

    def epoch(self, epoch: int) -> SearchRecord:
        start = time.perf_counter()
        warm = epoch <= self.config.warmup_epochs
        lr = float(self.w_opt.param_groups[0]["lr"])
        sums = {"train": 0.0, "arch": 0.0, "budget": 0.0}
        val_batches = _cycle(self.val_loader)
        tau = self.config.tau0
        for step, (x, y) in enumerate(self.train_loader):
            tau = self.tau(epoch, step)
            sums["train"] += self._weight_step(x, y, "hard" if warm else self._mode(), tau)
            if not warm:
                xv, yv = next(val_batches)
                arch, budget = self._arch_step(xv, yv, tau)
                sums["arch"] += arch
                sums["budget"] += budget
        record = self._record(epoch, warm, tau, lr, sums, time.perf_counter() - start)
        self.records.append(record)
        return record

    def _mode(self) -> str:
        return "hard" if self.config.hard else "sample"

    def _weight_step(self, x: Tensor, y: Tensor, mode: str, tau: float) -> float:
        self.supernet.train()
        x, y = x.to(self.device), y.to(self.device)
        with torch.no_grad():
            self.strategy.gate(mode, tau)
        self.w_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.supernet(x), y)
        loss.backward()
        self.w_opt.step()
        self.w_sched.step()
        return float(loss.detach())

    def _arch_step(self, x: Tensor, y: Tensor, tau: float) -> tuple[float, float]:
        x, y = x.to(self.device), y.to(self.device)
        self.strategy.gate(self._mode(), tau)
        self.a_opt.zero_grad(set_to_none=True)
        self.w_opt.zero_grad(set_to_none=True)
        ce = F.cross_entropy(self.supernet(x), y)
        expected = self.supernet.space.expected_macs(self.strategy.expected_widths())
        argmax_macs = self.supernet.space.macs(self.strategy.discrete_widths())
        budget = budget_loss(expected, argmax_macs, self.target, self.config.budget_band)
        loss = ce + self.config.budget_weight * budget + self.strategy.regularizer()
        loss.backward()
        self.a_opt.step()
        return float(ce.detach()), float(budget.detach())

    def _record(
        self, epoch: int, warm: bool, tau: float, lr: float, sums: dict[str, float], seconds: float
    ) -> SearchRecord:
        space = self.supernet.space
        with torch.no_grad():
            expected = float(space.expected_macs(self.strategy.expected_widths()))
            widths = self.strategy.discrete_widths()
        val = self.evaluate("discrete", tau)
        return SearchRecord(
            epoch=epoch,
            phase="warmup" if warm else "search",
            tau=tau,
            lr=lr,
            train_loss=sums["train"] / self.steps,
            arch_loss=None if warm else sums["arch"] / self.steps,
            budget_loss=None if warm else sums["budget"] / self.steps,
            expected_macs=expected,
            expected_macs_ratio=expected / self.full_macs,
            argmax_macs_ratio=space.macs(widths) / self.full_macs,
            val_acc=val,
            seconds=seconds,
        )

    def evaluate(self, mode: str, tau: float, widths: dict[str, int] | None = None) -> float:
        """Validation accuracy of the supernet with masks of ``mode`` (or fixed ``widths``),
        after recalibrating its BN statistics for exactly those masks."""
        with torch.no_grad():
            if widths is None:
                self.strategy.gate(mode, tau)
            else:
                self.supernet.set_widths(widths)
            recalibrate_bn(self.supernet, self.calibration, self.device)
            acc = evaluate(self.supernet, self.val_loader, device=self.device).accuracy
            self.supernet.set_masks(None)
        return acc

    def finish(self, space: SearchSpace) -> SearchOutcome:
        c = self.config
        argmax = self.strategy.discrete_widths()
        widths = project_to_budget(
            space,
            argmax,
            self.strategy.choices,
            self.strategy.choice_log_probs(),
            self.target,
            c.tolerance,
        )
        final_tau = self.records[-1].tau if self.records else c.tau_min
        relaxed = self.evaluate("relaxed", final_tau)
        discrete = self.evaluate("discrete", final_tau, widths=argmax)
        return SearchOutcome(
            space.spec(widths),
            self.supernet,
            self.strategy,
            argmax,
            relaxed,
            discrete,
            self.calibration,
            list(self.records),
            self.seconds,
        )

    # -- checkpointing -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "format": SEARCH_FORMAT,
            "config": _config_dict(self.config),
            "supernet": self.supernet.model.state_dict(),
            "strategy": self.strategy.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "w_sched": self.w_sched.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "records": [asdict(r) for r in self.records],
            "seconds": self.seconds,
            "rng": rng_state(self.device),
            "train_loader": loader_state(self.train_loader),
            "val_loader": loader_state(self.val_loader),
        }

    def load(self, path: Path) -> None:
        state = read_checkpoint(path, SEARCH_FORMAT, "search")
        if state["config"] != _config_dict(self.config):
            raise ConfigError(
                f"cannot resume from {path}: it was written with other search "
                "options (use a new output directory)"
            )
        self._restore(state, arch_optimizer=True)

    def warm_start(self, path: Path) -> None:
        """Continue from a shared warm-up (:func:`warm_up`) of a search whose options differ
        from this one's in :data:`WARMUP_INDEPENDENT` options at most."""
        state = read_checkpoint(path, SEARCH_FORMAT, "warm-up")
        done = [r["phase"] for r in state["records"]]
        if (
            _warmup_dict(state["config"]) != _warmup_dict(_config_dict(self.config))
            or done != ["warmup"] * self.config.warmup_epochs
        ):
            raise ConfigError(
                f"cannot start from the warm-up {path}: it was written with other options "
                "or is unfinished"
            )
        self._restore(state, arch_optimizer=False)  # Adam has not stepped; keep this arch_lr
        self.records = [replace(r, tau=self.config.tau0) for r in self.records]

    def _restore(self, state: dict[str, Any], *, arch_optimizer: bool) -> None:
        self.supernet.model.load_state_dict(state["supernet"])
        self.strategy.load_state_dict(state["strategy"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.w_sched.load_state_dict(state["w_sched"])
        if arch_optimizer:
            self.a_opt.load_state_dict(state["a_opt"])
        self.records = [SearchRecord(**r) for r in state["records"]]
        self.seconds = float(state["seconds"])
        restore_rng(state["rng"], self.device)
        restore_loader(self.train_loader, state["train_loader"])
        restore_loader(self.val_loader, state["val_loader"])


# Options the warm-up epochs do not depend on: they train the weights alone at widths drawn
# uniformly from the initial logits (exactly one-hot masks, whatever the temperature), so
# searches that differ only in these can share one warm-up (:func:`warm_up`).
WARMUP_INDEPENDENT = frozenset(
    {
        "target_macs",
        "tau0",
        "tau_min",
        "schedule",
        "hard",
        "arch_lr",
        "arch_weight_decay",
        "budget_weight",
        "budget_band",
        "tolerance",
    }
)


def _warmup_dict(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in WARMUP_INDEPENDENT}


def _config_dict(config: SearchConfig) -> dict[str, Any]:
    """The options that shape the search (not the fine-tuning, not the device)."""
    skip = {
        "select",
        "rank_samples",
        "rank_pool",
        "rank_top_k",
        "device",
        "finetune_epochs",
        "finetune_lr",
        "kd_alpha",
        "kd_temperature",
        "from_scratch",
    }
    out = {}
    for f in fields(config):
        if f.name not in skip:
            value = getattr(config, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def take_batches(loader: Iterable[Any], n: int) -> list[tuple[Tensor, Tensor]]:
    """The first ``n`` batches of one pass (fixed BN-calibration data for the whole search)."""
    batches = []
    for x, y in loader:
        batches.append((x, y))
        if len(batches) == n:
            break
    return batches


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ConfigError("the validation loader is empty: a search needs a validation split")


def write_search_summary(path: Path, records: list[SearchRecord]) -> None:
    """Per-epoch search summary as CSV (temperature, expected MACs, losses, accuracy)."""
    names = [f.name for f in fields(SearchRecord)]
    lines = [",".join(names)]
    for r in records:
        row = asdict(r)
        lines.append(",".join("" if row[n] is None else _fmt(row[n]) for n in names))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _fmt(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


# -- after the search ----------------------------------------------------------------------------
def extract_searched(outcome: SearchOutcome) -> nn.Module:
    """The standalone network of the found spec, with the supernet's (inherited) weights."""
    return extract_at(outcome.supernet, outcome.spec, outcome.calibration)


def extract_at(
    supernet: Supernet, spec: WidthSpec, calibration: Sequence[tuple[Tensor, Tensor]]
) -> nn.Module:
    """The standalone network of ``spec`` with the supernet's weights and BN statistics
    recalibrated for exactly these widths on ``calibration`` (the running statistics the
    supernet holds belong to whatever widths it ran last). Any spec of the space works: the
    found one, a uniform-width one of the same MACs, a predictor's candidate."""
    if not calibration:
        raise ValueError("extract_at needs calibration batches for the BN statistics")
    device = next(supernet.parameters()).device
    with torch.no_grad():
        supernet.set_widths(spec.widths)
        recalibrate_bn(supernet, calibration, device)
        supernet.set_masks(None)
    return extract(supernet.model.state_dict(), spec)


def finetune(
    small: nn.Module,
    teacher: nn.Module | None,
    train_loader: Any,
    val_loader: Iterable[Any] | None,
    *,
    config: SearchConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> None:
    """Fine-tune (or, with ``from_scratch``, retrain) the found network, distilling from
    ``teacher`` when ``kd_alpha > 0``."""
    if config.finetune_epochs == 0:
        return
    use_teacher = teacher if config.kd_alpha > 0 else None
    train_model(
        small,
        train_loader,
        config=config.finetune_config(),
        val_loader=val_loader,
        teacher=use_teacher,
        out_dir=out_dir,
        checkpoint=out_dir is not None,
        resume=resume,
        progress=progress,
        desc="retrain" if config.from_scratch else "fine-tune",
    )


@dataclass
class SearchResult:
    """The found network and its numbers (also what ``metrics.json`` holds)."""

    spec: WidthSpec
    model: nn.Module
    metrics: dict[str, Any]
    records: list[SearchRecord]


def search(
    model: nn.Module,
    train_loader: Any,
    val_loader: Iterable[Any],
    *,
    test_loader: Iterable[Any] | None = None,
    space: SearchSpace | None = None,
    input_size: tuple[int, int] | None = None,
    config: SearchConfig | None = None,
    progress: bool = True,
) -> SearchResult:
    """Search, extract and fine-tune from a trained full network and your own loaders.

    ``model`` is a full-width network of a registered space, e.g. your own trained
    ``torchvision.models.resnet50`` instance: its space is recognised from its tensors (pass
    ``input_size`` or it is read from the first training batch). Accuracies are measured on
    ``test_loader`` (or the validation loader if there is none).
    """
    from search_spaces import identify

    cfg = config or SearchConfig()
    cfg.validate()
    if space is None:
        size = input_size or _batch_size_hw(train_loader)
        space = identify(model, input_size=size)
    eval_loader = test_loader if test_loader is not None else val_loader
    baseline_acc = evaluate(model, eval_loader, device=cfg.device).accuracy
    outcome = search_widths(model, space, train_loader, val_loader, config=cfg, progress=progress)
    outcome = select_network(outcome, model, train_loader, val_loader, cfg, progress=progress)[0]
    small = starting_network(outcome, cfg)
    finetune(small, model, train_loader, val_loader, config=cfg, progress=progress)
    metrics = summarize(outcome, small, baseline_acc, eval_loader, cfg)
    return SearchResult(outcome.spec, small, metrics, outcome.records)


def select_network(
    outcome: SearchOutcome,
    teacher: nn.Module,
    train_loader: Any,
    val_loader: Iterable[Any],
    config: SearchConfig,
    *,
    progress: bool = True,
) -> tuple[SearchOutcome, Any]:
    """With ``select="predictor"``, replace the projected argmax spec by the GCN's pick
    (:func:`nas.ranking.select_with_predictor`); returns the outcome and the selection."""
    if config.select != "predictor":
        return outcome, None
    from nas.ranking import SEARCH_FLAGS, select_with_predictor

    target = config.target_for(outcome.spec.get_space())
    selection = select_with_predictor(
        outcome.supernet,
        outcome.strategy.choices,
        target,
        config.tolerance,
        outcome.calibration,
        train_loader,
        val_loader,
        teacher if config.kd_alpha > 0 else None,
        config.finetune_config(),
        config.rank_config(),
        progress=progress,
        flags=SEARCH_FLAGS,
    )
    return replace(outcome, spec=selection.spec), selection


def starting_network(outcome: SearchOutcome, config: SearchConfig) -> nn.Module:
    if config.from_scratch:
        seed_everything(config.seed)
        return outcome.spec.get_space().build(outcome.spec.widths)
    return extract_searched(outcome)


def summarize(
    outcome: SearchOutcome,
    small: nn.Module,
    baseline_acc: float,
    eval_loader: Iterable[Any],
    config: SearchConfig,
) -> dict[str, Any]:
    space = outcome.spec.get_space()
    macs = space.macs(outcome.spec.widths)
    return {
        "space": space.name,
        "baseline_acc": baseline_acc,
        "searched_acc": evaluate(small, eval_loader, device=config.device).accuracy,
        "macs": macs,
        "flops": 2 * macs,
        "macs_ratio": macs / space.macs(),
        "target_macs": config.target_for(space),
        "target_macs_ratio": config.target_for(space) / space.macs(),
        "params": space.params(outcome.spec.widths),
        "params_ratio": space.params(outcome.spec.widths) / space.params(),
        "relaxation_gap": outcome.relaxation_gap,
        "relaxed_val_acc": outcome.relaxed_acc,
        "discrete_val_acc": outcome.discrete_acc,
        "search_seconds": round(outcome.seconds, 2),
        "strategy": config.strategy,
        "from_scratch": config.from_scratch,
    }


def _batch_size_hw(loader: Iterable[Any]) -> tuple[int, int]:
    x, _ = next(iter(loader))
    return int(x.shape[-2]), int(x.shape[-1])
