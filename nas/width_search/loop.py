"""The search loop: first-order bi-level optimisation of weights and architecture parameters.

1. the channels of every unit are put in importance order (function-preserving), so a width
   choice ``c`` keeps the ``c`` strongest channels;
2. warm-up epochs train the weights alone, each step at random widths (hard samples from the
   uniform initial distribution), so every width is trained before it is judged;
3. search epochs alternate a weight step on a training batch and an architecture step on a
   validation batch, with masks from the gate strategy at the annealed temperature; the
   architecture loss is the validation cross-entropy plus the budget loss on the expected MACs;
4. the argmax widths are projected onto the budget (exact MACs within ``tolerance``).

:func:`search_widths` runs it; :func:`warm_up` runs only the warm-up epochs (shared by a sweep's
trials). What happens after the search (selection, extraction, fine-tuning) is the search job's
(:mod:`nas.jobs.search`).
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from nas.cost import budget_loss, project_to_budget
from nas.engine import evaluate, make_optimizer, make_scheduler, seed_everything
from nas.errors import ConfigError
from nas.extraction import permute_channels
from nas.gates import GateStrategy, create_strategy, temperature
from nas.importance import channel_order
from nas.io import atomic_torch_save
from nas.supernet import CALIBRATION_BATCHES, Supernet, recalibrate_bn, take_batches
from nas.width_search.checkpoint import SEARCH_CHECKPOINT, load_checkpoint, run_state, warm_start
from nas.width_search.config import SearchConfig
from nas.width_search.records import (
    SEARCH_SUMMARY,
    SearchOutcome,
    SearchRecord,
    write_search_summary,
)
from search_spaces import SearchSpace

__all__ = ["SearchRun", "build_supernet", "search_widths", "start_run", "warm_up"]


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
    run = start_run(model, space, train_loader, val_loader, config)
    ckpt = Path(out_dir) / SEARCH_CHECKPOINT if out_dir is not None else None
    if resume and ckpt is not None and ckpt.is_file():
        load_checkpoint(run, ckpt)
    elif warmup is not None:
        warm_start(run, Path(warmup))
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
    run = start_run(model, space, train_loader, val_loader, config)
    if path.is_file():
        load_checkpoint(run, path)
    _run_epochs(run, config.warmup_epochs, path, None, "warm-up", progress)
    return path


def start_run(
    model: nn.Module,
    space: SearchSpace,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any],
    config: SearchConfig,
) -> SearchRun:
    config.validate()
    target = config.target_for(space)
    device = torch.device(config.device)
    seed_everything(config.seed)
    choices = config.choices(space)
    supernet, strategy = build_supernet(model, space, config, choices, device)
    return SearchRun(supernet, strategy, config, target, train_loader, val_loader, device)


def _run_epochs(
    run: SearchRun,
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
                atomic_torch_save(run_state(run), ckpt)


def build_supernet(
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


class SearchRun:
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
            sums["train"] += self.weight_step(x, y, "hard" if warm else self.weight_mode(), tau)
            if not warm:
                xv, yv = next(val_batches)
                arch, budget = self.arch_step(xv, yv, tau)
                sums["arch"] += arch
                sums["budget"] += budget
        record = self._record(epoch, warm, tau, lr, sums, time.perf_counter() - start)
        self.records.append(record)
        return record

    def weight_mode(self) -> str:
        """The mask mode of the weight and architecture steps of the search epochs."""
        return "hard" if self.config.hard else "sample"

    def weight_step(self, x: Tensor, y: Tensor, mode: str, tau: float) -> float:
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

    def arch_step(self, x: Tensor, y: Tensor, tau: float) -> tuple[float, float]:
        x, y = x.to(self.device), y.to(self.device)
        self.strategy.gate(self.weight_mode(), tau)
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


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ConfigError("the validation loader is empty: a search needs a validation split")
