"""``nas train``: the options parsed into one call of :func:`nas.runs.train_baseline` (the
full-width network of a space trained on a dataset: a baseline/teacher), and its result printed.

Writes ``arch.json``, ``model.pt``, ``model.pt2``, ``model.ts``, ``summary.csv``, ``checkpoint.pt``,
``args.yaml`` and ``metrics.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.data import DataOptions
from nas.engine import ThreadOptions, TrainConfig
from nas.engine.config import ParallelOptions
from nas.engine.tensorboard import TensorBoardOptions, tensorboard_run
from nas.jobs.base import Command
from nas.jobs.format import human
from nas.options import option
from nas.runs import train_baseline

__all__ = ["COMMAND", "TrainOptions"]


@dataclass
class TrainOptions(ThreadOptions, DataOptions):
    """Where ``nas train`` writes and what it trains."""

    group: ClassVar[str] = "run"

    out_dir: str = option("", "output directory (required)", flag="--out")
    space: str = option(
        "resnet20", "search space (see nas spaces)", choices="search_spaces:SPACE_NAMES"
    )
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")
    resume: bool = option(False, "continue an interrupted run in --out (the same options)")
    progress: bool = option(True, "no progress bars", flag="--quiet")


def _cli(
    options: TrainOptions,
    config: TrainConfig,
    parallel: ParallelOptions,
    monitor: TensorBoardOptions,
) -> int:
    with tensorboard_run(options.out_dir, monitor.tensorboard):
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
    options=(TrainOptions, TrainConfig, ParallelOptions, TensorBoardOptions),
    run=_cli,
    description="Trains the full-width network of a space: the baseline and teacher of a search.",
    config_file=True,
    resumable=True,
    required=frozenset({"out_dir"}),
    distributed=True,
)
