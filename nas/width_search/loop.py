"""The search loop: first-order bi-level optimisation of weights and architecture parameters.

1. the channels of every unit are put in importance order (function-preserving), so a width
   choice ``c`` keeps the ``c`` strongest channels;
2. the training split is divided: the weights train on one part, the architecture parameters
   on the other (``arch_fraction``);
3. warm-up epochs train the weights alone, each step at random widths (hard samples from the
   uniform initial distribution, or the sandwich rule), so every width is trained before it is
   judged;
4. search epochs alternate a weight step and an architecture step (:class:`SearchRun`): the
   architecture loss is the cross-entropy plus the budget on the expected MACs and a crispness
   term;
5. the most probable widths inside the budget band are delivered (the projection), and the
   relaxed, argmax and delivered networks are compared on the validation split.

:func:`search_widths` runs it; :func:`warm_up` runs only the warm-up epochs (shared by a sweep's
trials). What happens after the search (selection, extraction, fine-tuning) is the search
pipeline's (:mod:`nas.width_search.pipeline`).
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from nas.cost import ResolvedBudget
from nas.data import reseeded, split_loader
from nas.engine import (
    has_checkpoint,
    loader_state,
    restore_loader,
    save_checkpoint,
    seed_everything,
)
from nas.engine.distributed import synced_batch_norm
from nas.extraction import permute_channels
from nas.gates import GateStrategy
from nas.importance import CRITERIA, channel_order
from nas.supernet import Supernet
from nas.width_search.checkpoint import SEARCH_CHECKPOINT, load_checkpoint, run_state, warm_start
from nas.width_search.config import SearchConfig
from nas.width_search.records import (
    SEARCH_SUMMARY,
    SearchOutcome,
    log_unit_choices,
    write_search_summary,
)
from nas.width_search.run import SearchRun
from nas.width_search.setup import create_strategy, search_budget
from search_spaces import SearchSpace

__all__ = ["build_supernet", "search_widths", "start_run", "warm_up"]


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
    budget: ResolvedBudget | None = None,
    progress: bool = True,
) -> SearchOutcome:
    """Search widths for ``space`` starting from the trained full ``model`` (left untouched).

    With ``out_dir`` a checkpoint is written after every epoch (``search_checkpoint.pt``) and
    the per-epoch summary to ``summary.csv``; ``resume=True`` continues from the
    checkpoint to the same result as an uninterrupted run. ``warmup`` is a shared warm-up
    (:func:`warm_up`, same model, loaders and warm-up options): the search starts after it, with
    the same result as if it had run the warm-up itself. ``budget``: the run's, resolved once
    by the caller (default: from ``config``, :func:`~nas.width_search.setup.search_budget`).
    """
    run = start_run(model, space, train_loader, val_loader, config, budget)
    ckpt = Path(out_dir) / SEARCH_CHECKPOINT if out_dir is not None else None
    if resume and ckpt is not None and has_checkpoint(ckpt):
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
    if has_checkpoint(path):  # finished or not, by a search that may differ after it
        warm_start(run, path, unfinished=True)
    _run_epochs(run, config.warmup_epochs, path, None, "warm-up", progress)
    return path


def start_run(
    model: nn.Module,
    space: SearchSpace,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any],
    config: SearchConfig,
    budget: ResolvedBudget | None = None,
) -> SearchRun:
    """A search ready to run: the supernet built from ``model``, the strategy, and the training
    split divided into the weights' part and the architecture's (``config.arch_fraction``).
    ``budget``: the run's, when the caller resolved it (default: :func:`search_budget`)."""
    config.validate()
    budget = budget or search_budget(config, space)
    device = torch.device(config.device)
    seed_everything(config.seed)
    scoring = train_loader if CRITERIA.get(config.order).needs_data else None
    supernet, strategy = build_supernet(model, space, config, device, scoring)
    weights: Iterable[Any]
    arch: Iterable[Any]
    if strategy.bilevel:
        weights, arch = split_loader(train_loader, config.arch_fraction, config.seed)  # type: ignore[arg-type]
    else:  # joint training: the gates learn with the weights on the whole training split (in
        # the order of the seed, whatever the loader served before, as the split loaders are)
        weights = arch = reseeded(train_loader, config.seed)  # type: ignore[arg-type]
    return SearchRun(supernet, strategy, config, budget, weights, arch, val_loader, device)


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
            with synced_batch_norm():
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
                log_unit_choices(summary, record.epoch, run.strategy)
            if ckpt is not None:
                save_checkpoint(run_state(run), ckpt)


def build_supernet(
    model: nn.Module,
    space: SearchSpace,
    config: SearchConfig,
    device: torch.device,
    data: Iterable[Any] | None = None,
) -> tuple[Supernet, GateStrategy]:
    """The supernet of ``model`` with its channels in ``config.order`` (scored on ``data`` for
    a data-driven criterion: the loader's shuffling state is left as it was, so the training
    batches that follow do not depend on the scoring)."""
    net = copy.deepcopy(model).to(device)
    net.eval()
    state = loader_state(data) if data is not None else None
    order = channel_order(net, space, config.order, data)
    if data is not None and state is not None:
        restore_loader(data, state)
    permute_channels(net, space, order)
    supernet = Supernet(net, space)
    strategy = create_strategy(config, space).to(device)
    strategy.attach(supernet)
    return supernet, strategy
