"""``nas extract``: a trained full network sliced down to a width spec.

Writes ``arch.json``, ``model.pt``, ``model.ts``, ``metrics.json`` (MACs, params and their ratios
to the full network) and ``args.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from nas.engine.config import ThreadOptions
from nas.extraction import check_full_weights, extract, save_model
from nas.importance import channel_order
from nas.io import load_state_dict_file, write_json, write_yaml
from nas.jobs.base import Command
from nas.jobs.format import human
from nas.options import option
from nas.rundir import prepare_out_dir, run_output
from nas.runs import environment, resolve_threads, torch_threads
from search_spaces import WidthSpec

__all__ = ["COMMAND", "ExtractOptions", "extract_to_dir"]


@dataclass
class ExtractOptions(ThreadOptions):
    """What ``nas extract`` reads and writes."""

    group: ClassVar[str] = "extract"

    weights: str = option("", "full-width state_dict (e.g. DIR/model.pt) (required)")
    arch: str = option("", "width spec (arch.json) to extract (required)")
    out_dir: str = option("", "output directory (required)", flag="--out")
    order: str = option(
        "l1",
        "the channel-importance criterion whose top channels each unit keeps (the "
        "data-driven chip and hrel need data, which extract does not read)",
        choices="nas.importance:CRITERIA",
    )
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")


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
        full.load_state_dict(state)
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


def _cli(options: ExtractOptions) -> int:
    report = extract_to_dir(
        options.weights,
        options.arch,
        options.out_dir,
        order=options.order,
        overwrite=options.overwrite,
        threads=options.threads,
    )
    print(
        f"extracted {report['space']}: {human(report['macs'])} MACs "
        f"({float(report['macs_ratio']):.1%} of full), {human(report['params'])} params "
        f"-> {options.out_dir}"
    )
    return 0


COMMAND = Command(
    options=(ExtractOptions,),
    run=_cli,
    description="Slices a trained full network down to the widths of a spec (arch.json).",
    required=frozenset({"weights", "arch", "out_dir"}),
)
