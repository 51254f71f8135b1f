"""``nas extract``: the options parsed into one call of :func:`nas.runs.extract_to_dir` (a
trained full network sliced down to a width spec), and its result printed.

Writes ``arch.json``, ``model.pt``, ``model.pt2``, ``model.ts``, ``metrics.json`` (MACs, params and
their ratios to the full network) and ``args.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.engine.config import ThreadOptions
from nas.jobs.base import Command
from nas.jobs.export import export_after
from nas.jobs.format import human
from nas.options import option
from nas.runs import extract_to_dir
from nas.runs.export import ExportOptions

__all__ = ["COMMAND", "ExtractOptions"]


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


def _cli(options: ExtractOptions, export: ExportOptions) -> int:
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
    export_after(options.out_dir, export)
    return 0


COMMAND = Command(
    options=(ExtractOptions, ExportOptions),
    run=_cli,
    description="Slices a trained full network down to the widths of a spec (arch.json).",
    required=frozenset({"weights", "arch", "out_dir"}),
)
