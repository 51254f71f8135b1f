"""Extraction into a run directory as a library call: :func:`extract_to_dir` (what ``nas
extract`` runs).

A trained full network sliced down to a width spec. Writes ``arch.json``, ``model.pt``,
``model.pt2``, ``model.ts``, ``metrics.json`` (MACs, params and their ratios to the full network)
and ``args.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.extraction import check_full_weights, extract, save_model
from nas.importance import channel_order
from nas.io import load_state_dict_file, load_weights, write_json, write_yaml
from nas.rundir import prepare_out_dir, run_output
from nas.runs.base import environment, resolve_threads, torch_threads
from search_spaces import WidthSpec

__all__ = ["extract_to_dir"]


def extract_to_dir(
    weights: str | Path,
    arch: str | Path,
    out_dir: str | Path,
    *,
    order: str = "l1",
    overwrite: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """Slice the full network in ``weights`` down to the spec in ``arch``; save to ``out_dir``.

    ``order``: the weight-only criterion that picks the kept channels of each unit.
    ``threads``: torch threads (default: the cores this process may use).
    """
    out = prepare_out_dir(out_dir, overwrite=overwrite, inputs=(weights, arch))
    spec = WidthSpec.load(arch)
    space = spec.get_space()
    state = load_state_dict_file(weights)
    check_full_weights(space, state, source=f"weights {weights}")
    count = resolve_threads(threads)
    with torch_threads(count):
        full = space.build()
        load_weights(full, state)
        full.eval()
        pruned = extract(full, spec, channel_order(full, space, order))
        with run_output(out, overwrite=overwrite, inputs=(weights, arch)):
            return _save_extracted(pruned, spec, out, weights, arch, order, count)


def _save_extracted(
    pruned: torch.nn.Module,
    spec: WidthSpec,
    out: Path,
    weights: str | Path,
    arch: str | Path,
    order: str,
    threads: int,
) -> dict[str, Any]:
    space = spec.get_space()
    save_model(pruned, spec, out)
    write_yaml(
        out / "args.yaml",
        {
            "command": "extract",
            "weights": str(weights),
            "arch": str(arch),
            "order": order,
            "threads": threads,
            "environment": environment(),
        },
    )
    report = {
        "space": spec.space,
        "weights": str(weights),
        "arch": str(arch),
        "order": order,
        "macs": spec.macs(),
        "flops": 2 * spec.macs(),
        "macs_ratio": spec.macs_ratio(),
        "params": spec.params(),
        "params_ratio": spec.params() / space.params(),
    }
    write_json(out / "metrics.json", report)
    return report
