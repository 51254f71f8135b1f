"""A transfer into a run directory as a library call: :func:`run_transfer` (what ``nas
transfer`` runs), around :func:`nas.transfer_learning.transfer`.

Writes ``arch.json`` (the spec for the new task), ``model.pt``, ``model.pt2``, ``model.ts``,
``metrics.json``, ``summary.csv``, ``args.yaml`` and, with ``compare``, ``transfer.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.data import DataOptions
from nas.engine import TrainConfig
from nas.extraction import save_model
from nas.io import load_state_dict_file, write_json, write_yaml
from nas.options import record
from nas.plots import plot_transfer
from nas.rundir import prepare_out_dir, run_output
from nas.runs import environment, resolve_threads, torch_threads
from nas.transfer_learning.core import check_mode, inherit_weights, transfer
from search_spaces import WidthSpec

__all__ = ["run_transfer"]


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

    Writes ``arch.json`` (the spec for the new task), ``model.pt``, ``model.pt2``, ``model.ts``,
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
