"""``nas train``: the full-width network of a space trained on a dataset (a baseline/teacher).

Writes ``arch.json``, ``model.pt``, ``model.ts``, ``summary.csv``, ``checkpoint.pt``,
``args.yaml`` and ``metrics.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import search_spaces
from nas.data import DataBundle, DataOptions
from nas.engine import ThreadOptions, TrainConfig, evaluate, read_summary
from nas.engine.config import ParallelOptions
from nas.io import write_json
from nas.jobs.base import Command
from nas.jobs.format import human
from nas.options import option, record
from nas.rundir import prepare_out_dir, run_output
from nas.runs import (
    environment,
    resolve_threads,
    torch_threads,
    train_full,
    write_or_check_args,
)
from search_spaces import SearchSpace

__all__ = ["COMMAND", "TrainOptions", "train_baseline"]


@dataclass
class TrainOptions(ThreadOptions, DataOptions):
    """Where ``nas train`` writes and what it trains."""

    group: ClassVar[str] = "run"

    out_dir: str = option("", "output directory (required)", flag="--out")
    space: str = option("resnet20", "search space (see nas spaces)", choices="search_spaces:SPACES")
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")
    resume: bool = option(False, "continue an interrupted run in --out (the same options)")
    progress: bool = option(True, "no progress bars", flag="--quiet")


def train_baseline(
    *,
    out_dir: str | Path,
    space: str = "resnet20",
    data: DataOptions | None = None,
    config: TrainConfig | None = None,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Train the full-width network of ``space`` on the data; save it to ``out_dir``.

    Writes ``arch.json``, ``model.pt``, ``model.ts``, ``summary.csv``, ``checkpoint.pt``,
    ``args.yaml`` and ``metrics.json``; returns the metrics. ``resume`` continues an
    interrupted run in ``out_dir`` (same options) to the result it would have reached.
    ``threads``: torch threads (default torch's, or the interrupted run's with ``resume``);
    recorded in ``args.yaml``.
    """
    d, c = data or DataOptions(), config or TrainConfig()
    inputs = d.input_paths()
    out = prepare_out_dir(
        out_dir, overwrite=overwrite, resume=resume, command="train", inputs=inputs
    )
    search_spaces.get_entry(space)  # unknown names fail before any data is read
    c.validate()
    bundle = d.load(c.seed)
    sp = search_spaces.create(
        space,
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        input_size=bundle.input_size,
    )
    count = resolve_threads(threads, out if resume else None)
    with (
        run_output(out, overwrite=overwrite, resume=resume, command="train", inputs=inputs),
        torch_threads(count),
    ):
        return _train_to_dir(out, space, sp, d, c, bundle, resume, progress, count)


def _train_to_dir(
    out: Path,
    space: str,
    sp: SearchSpace,
    d: DataOptions,
    c: TrainConfig,
    bundle: DataBundle,
    resume: bool,
    progress: bool,
    threads: int,
) -> dict[str, Any]:
    resolved = {
        "command": "train",
        "space": space,
        **record(d),
        **record(c),
        "threads": threads,
        "data": bundle.describe(),
        "environment": environment(),
    }
    write_or_check_args(out, resolved, resume=resume)
    start = time.perf_counter()
    model = train_full(sp, bundle, None, c, out, resume=resume, progress=progress)
    seconds = time.perf_counter() - start
    test = evaluate(model, bundle.test, device=c.device)
    summary = read_summary(out)
    metrics = {
        "space": space,
        "dataset": d.dataset,
        "test_acc": test.accuracy,
        "test_loss": test.loss,
        "val_acc": summary[-1]["val_acc"] if summary else None,
        "macs": sp.macs(),
        "flops": 2 * sp.macs(),
        "params": sp.params(),
        "epochs": c.epochs,
        "train_seconds": round(seconds, 2),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _cli(options: TrainOptions, config: TrainConfig, parallel: ParallelOptions) -> int:
    m = train_baseline(
        out_dir=options.out_dir,
        space=options.space,
        data=options.data_options(),
        config=config,
        overwrite=options.overwrite,
        resume=options.resume,
        progress=options.progress,
        threads=options.threads,
    )
    print(
        f"{m['space']} on {m['dataset']}: test accuracy {m['test_acc']:.2f} % at "
        f"{human(m['macs'])} MACs, {m['train_seconds']:.0f} s of training -> {options.out_dir}"
    )
    return 0


COMMAND = Command(
    options=(TrainOptions, TrainConfig, ParallelOptions),
    run=_cli,
    description="Trains the full-width network of a space: the baseline and teacher of a search.",
    config_file=True,
    resumable=True,
    required=frozenset({"out_dir"}),
    distributed=True,
)
