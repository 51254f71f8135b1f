"""``nas transfer``: the options parsed into one call of
:func:`nas.transfer_learning.run_transfer` (a found width spec trained on another dataset), and
its result printed.

Writes ``arch.json`` (the spec for the new task), ``model.pt``, ``model.pt2``, ``model.ts``,
``metrics.json``, ``summary.csv``, ``args.yaml`` and, with ``--compare``, ``transfer.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.data import DataOptions
from nas.engine import ThreadOptions, TrainConfig
from nas.engine.config import ParallelOptions
from nas.engine.tensorboard import TensorBoardOptions, tensorboard_run
from nas.jobs.base import Command
from nas.jobs.export import export_after
from nas.jobs.format import human
from nas.options import option
from nas.runs.export import ExportOptions
from nas.transfer_learning import MODES, run_transfer

__all__ = ["COMMAND", "TransferOptions"]


@dataclass
class TransferOptions(ThreadOptions, DataOptions):
    """What ``nas transfer`` reads and writes."""

    group: ClassVar[str] = "run"

    arch: str = option("", "the found width spec (DIR/arch.json) (required)")
    weights: str | None = option(
        None, "the found network's weights (DIR/model.pt), for --mode finetune"
    )
    mode: str | None = option(
        None,
        "train from scratch, or fine-tune from --weights (default: finetune when --weights is "
        "given, else scratch)",
        choices=MODES,
    )
    compare: bool = option(
        False, "also train the full and a uniform-width network of the same MACs"
    )
    out_dir: str = option("runs/transfer", "output directory", flag="--out")
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")
    progress: bool = option(True, "no progress bars", flag="--quiet")


def _cli(
    options: TransferOptions,
    config: TrainConfig,
    parallel: ParallelOptions,
    export: ExportOptions,
    monitor: TensorBoardOptions,
) -> int:
    with tensorboard_run(options.out_dir, monitor.tensorboard):
        m = run_transfer(
            options.arch,
            options.data_options(),
            config,
            out_dir=options.out_dir,
            weights=options.weights,
            mode=options.mode,
            compare=options.compare,
            overwrite=options.overwrite,
            progress=options.progress,
            threads=options.threads,
        )
    for row in m.get("compare", [m]):
        print(
            f"{row.get('network', 'found'):<8} {row['test_acc']:6.2f} %  "
            f"{human(row['macs'])} MACs ({row['macs_ratio']:.1%})"
        )
    if "reference" in m:
        print(f"reference: {m['reference']}")
    print(f"-> {options.out_dir}")
    export_after(options.out_dir, export)
    return 0


COMMAND = Command(
    options=(
        TransferOptions,
        TrainConfig,
        ParallelOptions,
        ExportOptions,
        TensorBoardOptions,
    ),
    run=_cli,
    description="Trains a found width spec on another dataset (the stem and head are rebuilt "
    "for its channels, classes and input size).",
    defaults={"lr": 0.05},
    config_file=True,
    required=frozenset({"arch"}),
    distributed=True,
)
