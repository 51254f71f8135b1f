"""``nas search``: the options parsed into one call of :func:`nas.width_search.run_search`, and
its result printed."""

from __future__ import annotations

from nas.engine.config import ParallelOptions
from nas.engine.tensorboard import TensorBoardOptions, tensorboard_run
from nas.errors import ConfigError
from nas.jobs.base import Command
from nas.jobs.export import export_after
from nas.jobs.format import human
from nas.runs import RunOptions
from nas.runs.export import CONDITIONAL, ExportOptions
from nas.width_search import SearchConfig, run_search

__all__ = ["COMMAND"]


def _cli(
    options: RunOptions,
    config: SearchConfig,
    parallel: ParallelOptions,
    export: ExportOptions,
    monitor: TensorBoardOptions,
) -> int:
    if export.export is not None and not config.static:
        from nas.gates import strategy_class

        if strategy_class(config.strategy).per_input:
            raise ConfigError(
                f"--export {export.export}: --strategy {config.strategy} delivers {CONDITIONAL}"
            )
    with tensorboard_run(options.out_dir, monitor.tensorboard, name="search"):
        m = run_search(options, config)
    print(
        f"{m['space']} on {m['dataset']}: baseline {m['baseline_acc']:.2f} % at "
        f"{human(m['baseline_macs'])} MACs -> searched {m['searched_acc']:.2f} % at "
        f"{human(m['macs'])} MACs ({m['macs_ratio']:.1%})"
        + (" on average per image (conditional network)" if m.get("conditional") else "")
        + (
            f", {m['latency_ms']:.2f} ms measured ({m['latency_ratio']:.1%} of full; "
            f"{m['predicted_latency_ms']:.2f} ms predicted, target "
            f"{m['target_latency_ms']:.2f} ms)"
            if "latency_ms" in m
            else ""
        )
        + (
            f"; uniform width {m['uniform_acc']:.2f} % at {human(m['uniform_macs'])} MACs "
            f"({m['uniform_macs_ratio']:.1%})"
            if "uniform_acc" in m
            else ""
        )
        + (
            f"; on validation nothing beat uniform width (one-shot loss "
            f"{m['oneshot_val_loss']:.3f} against uniform's {m['uniform_oneshot_val_loss']:.3f})"
            if m.get("beats_uniform_oneshot") is False
            else ""
        )
        + f"; relaxation gap {m['relaxation_gap']:+.2f} points; search "
        f"{m['search_seconds']:.0f} s -> {options.out_dir}"
    )
    export_after(options.out_dir, export)
    return 0


COMMAND = Command(
    options=(RunOptions, SearchConfig, ParallelOptions, ExportOptions, TensorBoardOptions),
    run=_cli,
    description="Gumbel-softmax width search under a MAC budget (or a measured latency: --cost "
    "latency). Options may also come from "
    "--config file.yaml (keys as the option names; args.yaml of a run works).",
    config_file=True,
    resumable=True,
    distributed=True,
)
