"""The baseline as a library call: :func:`train_baseline` (what ``nas train`` runs).

The full-width network of a space trained on a dataset (a baseline/teacher). Writes
``arch.json``, ``model.pt``, ``model.pt2``, ``model.ts``, ``summary.csv``, ``checkpoint.pt``,
``args.yaml`` and ``metrics.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import search_spaces
from nas.data import DataBundle, DataOptions
from nas.engine import TrainConfig, evaluate, read_summary
from nas.io import write_json
from nas.options import record
from nas.rundir import prepare_out_dir, run_output
from nas.runs.base import (
    environment,
    resolve_threads,
    torch_threads,
    train_full,
    write_or_check_args,
)
from search_spaces import SearchSpace

__all__ = ["train_baseline"]


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

    Writes ``arch.json``, ``model.pt``, ``model.pt2``, ``model.ts``, ``summary.csv``,
    ``checkpoint.pt``, ``args.yaml`` and ``metrics.json``; returns the metrics. ``resume`` continues
    an interrupted run in ``out_dir`` (same options) to the result it would have reached.
    ``threads``: torch threads (default torch's, or the interrupted run's with ``resume``); recorded
    in ``args.yaml``.
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
