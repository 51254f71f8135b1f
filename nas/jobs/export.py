"""``nas export RUN_DIR --format onnx``: a finished run's network written as ``model.onnx``
beside it and checked in ONNX Runtime (:func:`nas.runs.export.export_run`); the figures are
printed and added to the run's ``metrics.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nas.extraction.onnx_export import EXPORT_FORMATS
from nas.io import is_writer
from nas.jobs.base import Command
from nas.options import Options, option
from nas.runs.export import ExportOptions, export_run

__all__ = ["COMMAND", "ExportCommandOptions", "export_after"]


@dataclass
class ExportCommandOptions(Options):
    """What ``nas export`` reads and writes."""

    group: ClassVar[str] = "export"

    run_dir: str = option("", "a finished run's directory (arch.json + model.pt)", positional=True)
    format: str = option("onnx", "the deployment format", choices=EXPORT_FORMATS)


def _cli(options: ExportCommandOptions) -> int:
    _export(options.run_dir, options.format)
    return 0


def _export(run_dir: str | Path, fmt: str) -> None:
    figures = export_run(run_dir, fmt)
    print(
        f"exported {Path(run_dir) / figures['onnx_file']} (opset {figures['onnx_opset']}): "
        f"ONNX Runtime {figures['onnx_runtime']} agrees with the network within "
        f"{figures['onnx_max_abs_diff']:.2g}"
    )


def export_after(run_dir: str | Path, options: ExportOptions) -> None:
    """A command's ``--export``: its finished run exported (by the writing process only)."""
    if options.export is not None and is_writer():
        _export(run_dir, options.export)


COMMAND = Command(
    options=(ExportCommandOptions,),
    run=_cli,
    description="Writes a finished run's network as model.onnx (dynamic batch axis), checked "
    'against the network in ONNX Runtime; needs the onnx extra (pip install -e ".[onnx]").',
    required=frozenset({"run_dir"}),
)
