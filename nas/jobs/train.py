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
from nas.engine import TrainConfig, evaluate, read_summary
from nas.io import prepare_out_dir, run_output, write_json, write_yaml
from nas.jobs.base import Command
from nas.jobs.common import environment, train_full
from nas.jobs.format import human
from nas.options import option, record
from search_spaces import SearchSpace

__all__ = ["COMMAND", "TrainOptions", "train_baseline"]


@dataclass
class TrainOptions(DataOptions):
    """Where ``nas train`` writes and what it trains."""

    group: ClassVar[str] = "run"

    out_dir: str = option("", "output directory (required)", flag="--out")
    space: str = option("resnet20", "search space (see nas spaces)", choices="search_spaces:SPACES")
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")
    progress: bool = option(True, "no progress bars", flag="--quiet")


def train_baseline(
    *,
    out_dir: str | Path,
    space: str = "resnet20",
    data: DataOptions | None = None,
    config: TrainConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the full-width network of ``space`` on the data; save it to ``out_dir``.

    Writes ``arch.json``, ``model.pt``, ``model.ts``, ``summary.csv``, ``args.yaml`` and
    ``metrics.json``; returns the metrics.
    """
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    d, c = data or DataOptions(), config or TrainConfig()
    search_spaces.get_entry(space)  # unknown names fail before any data is read
    c.validate()
    bundle = d.load(c.seed)
    sp = search_spaces.create(
        space,
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        input_size=bundle.input_size,
    )
    with run_output(out, overwrite=overwrite):
        return _train_to_dir(out, space, sp, d, c, bundle, progress)


def _train_to_dir(
    out: Path,
    space: str,
    sp: SearchSpace,
    d: DataOptions,
    c: TrainConfig,
    bundle: DataBundle,
    progress: bool,
) -> dict[str, Any]:
    write_yaml(
        out / "args.yaml",
        {
            "command": "train",
            "space": space,
            **record(d),
            **record(c),
            "data": bundle.describe(),
            "environment": environment(),
        },
    )
    start = time.perf_counter()
    model = train_full(sp, bundle, None, c, out, resume=False, progress=progress)
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


def _cli(options: TrainOptions, config: TrainConfig) -> int:
    m = train_baseline(
        out_dir=options.out_dir,
        space=options.space,
        data=options.data_options(),
        config=config,
        overwrite=options.overwrite,
        progress=options.progress,
    )
    print(
        f"{m['space']} on {m['dataset']}: test accuracy {m['test_acc']:.2f} % at "
        f"{human(m['macs'])} MACs, {m['train_seconds']:.0f} s of training -> {options.out_dir}"
    )
    return 0


COMMAND = Command(
    options=(TrainOptions, TrainConfig),
    run=_cli,
    description="Trains the full-width network of a space: the baseline and teacher of a search.",
    config_file=True,
    required=frozenset({"out_dir"}),
)
