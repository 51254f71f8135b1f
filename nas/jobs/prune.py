"""``nas prune``: the options parsed into one call of :func:`nas.pruning.run_prune`, and its
result printed."""

from __future__ import annotations

from typing import Any

from nas.engine.config import ParallelOptions
from nas.engine.tensorboard import TensorBoardOptions, tensorboard_run
from nas.jobs.base import Command
from nas.jobs.export import export_after
from nas.jobs.format import human
from nas.pruning import PruneConfig, run_prune
from nas.runs import RunOptions
from nas.runs.export import ExportOptions

__all__ = ["COMMAND"]


def _cli(
    options: RunOptions,
    config: PruneConfig,
    parallel: ParallelOptions,
    export: ExportOptions,
    monitor: TensorBoardOptions,
) -> int:
    with tensorboard_run(options.out_dir, monitor.tensorboard):
        m = run_prune(options, config)
    print(
        f"{m['space']} on {m['dataset']}: baseline {m['baseline_acc']:.2f} % at "
        f"{human(m['baseline_macs'])} MACs -> {m['criterion']}/{m['allocation']} "
        f"{m['pruned_acc']:.2f} % at {human(m['macs'])} MACs ({m['macs_ratio']:.1%})"
        + (
            f"; {_reference_label(m)} {m['uniform_acc']:.2f} % at {human(m['uniform_macs'])} "
            f"MACs ({m['uniform_macs_ratio']:.1%})"
            if "uniform_acc" in m
            else ""
        )
        + f"; scoring {m['scoring_seconds']:.1f} s -> {options.out_dir}"
    )
    export_after(options.out_dir, export)
    return 0


def _reference_label(metrics: dict[str, Any]) -> str:
    """The ``--compare`` reference in a word or two: the same widths (random channels) or the
    uniform widths of the same MACs."""
    return "random channels" if metrics["uniform_widths"] == metrics["widths"] else "uniform width"


COMMAND = Command(
    options=(RunOptions, PruneConfig, ParallelOptions, ExportOptions, TensorBoardOptions),
    run=_cli,
    description="Prune a trained network with a channel-importance criterion under a MAC "
    "budget, fine-tune it with distillation. Options may also come from --config file.yaml.",
    defaults={"out_dir": "runs/prune"},
    config_file=True,
    resumable=True,
    distributed=True,
)
