"""``nas transfer``: a found width spec trained on another dataset.

Writes ``arch.json`` (the spec for the new task), ``model.pt``, ``model.ts``, ``metrics.json``,
``summary.csv``, ``args.yaml`` and, with ``--compare``, ``transfer.png``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from nas.data import DataOptions
from nas.engine import ThreadOptions, TrainConfig
from nas.engine.config import ParallelOptions
from nas.extraction import save_model
from nas.io import load_state_dict_file, write_json, write_yaml
from nas.jobs.base import Command
from nas.jobs.format import human
from nas.options import option, record
from nas.plots import plot_transfer
from nas.rundir import prepare_out_dir, run_output
from nas.runs import environment, resolve_threads, torch_threads
from nas.transfer_learning import MODES, check_mode, inherit_weights, transfer
from search_spaces import WidthSpec

__all__ = ["COMMAND", "TransferOptions", "run_transfer"]


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


# -- nas transfer --------------------------------------------------------------------------------
def run_transfer(
    arch: str | Path,
    data: DataOptions,
    config: TrainConfig,
    *,
    out_dir: str | Path = "runs/transfer",
    weights: str | Path | None = None,
    mode: str | None = None,
    compare: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """``nas transfer``: a found width spec trained on another dataset.

    Writes ``arch.json`` (the spec for the new task), ``model.pt``, ``model.ts``,
    ``metrics.json``, ``summary.csv``, ``args.yaml`` and, with ``compare``, ``transfer.png``.
    ``threads``: torch threads (default torch's), recorded in ``args.yaml``.
    """
    inputs = [arch, weights, *data.input_paths()]
    out = prepare_out_dir(out_dir, overwrite=overwrite, inputs=inputs)
    spec = WidthSpec.load(arch)
    config.validate()
    check_mode(mode, has_weights=weights is not None)
    state = load_state_dict_file(weights) if weights is not None else None
    if state is not None:  # refuse a spec/weights mismatch before any data is read
        inherit_weights(spec.get_space().build(spec.widths), spec, state)
    bundle = data.load(config.seed)
    count = resolve_threads(threads)
    with run_output(out, overwrite=overwrite, inputs=inputs), torch_threads(count):
        write_yaml(
            out / "args.yaml",
            {
                "command": "transfer",
                "arch": str(arch),
                "weights": None if weights is None else str(weights),
                "mode": mode,
                "compare": compare,
                **record(data),
                **record(config),
                "threads": count,
                "data": bundle.describe(),
                "environment": environment(),
            },
        )
        result = transfer(
            spec,
            bundle.train,
            bundle.test,
            num_classes=bundle.num_classes,
            in_channels=bundle.in_channels,
            input_size=bundle.input_size,
            config=config,
            val_loader=bundle.val,
            weights=state,
            mode=mode,
            compare=compare,
            out_dir=out,
            progress=progress,
        )
        save_model(result.model, result.spec, out)
        metrics = result.metrics | {"dataset": data.dataset, "arch": str(arch)}
        write_json(out / "metrics.json", metrics)
        if compare:
            plot_transfer(metrics, out / "transfer.png")
    return metrics


def _cli(options: TransferOptions, config: TrainConfig, parallel: ParallelOptions) -> int:
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
    return 0


COMMAND = Command(
    options=(TransferOptions, TrainConfig, ParallelOptions),
    run=_cli,
    description="Trains a found width spec on another dataset (the stem and head are rebuilt "
    "for its channels, classes and input size).",
    defaults={"lr": 0.05},
    config_file=True,
    required=frozenset({"arch"}),
    distributed=True,
)
