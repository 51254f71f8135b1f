"""Exporting a finished run's network: :func:`export_run` (what ``nas export`` and every
command's ``--export`` run) and :class:`ExportOptions` (the ``--export`` option, declared once
for ``nas search``, ``nas prune``, ``nas extract`` and ``nas transfer``).

The network of a run directory (``arch.json`` + ``model.pt``) is rebuilt, written as
``model.onnx`` beside them (atomically) and checked in ONNX Runtime; ``metrics.json`` gains the
export's figures (``onnx_opset``, ``onnx_max_abs_diff``, versions). A per-input (conditional)
network, whose graph changes with the input, is refused with one line that names ``--static``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from nas.errors import ConfigError
from nas.extraction.onnx_export import EXPORT_FORMATS, export_onnx, require_onnx
from nas.extraction.saving import load_model
from nas.io import read_json, write_json
from nas.options import LOCAL, Options, option
from nas.runs.base import static_run_dir
from search_spaces import WidthSpec

__all__ = ["ExportOptions", "check_exportable", "export_run"]

CONDITIONAL = (
    "a per-input (conditional) network, whose graph changes with the input: ONNX holds static "
    "networks (search with --static for one)"
)


@dataclass
class ExportOptions(Options):
    """``--export FORMAT``: the run's network also written in a deployment format."""

    group: ClassVar[str] = "export"

    export: str | None = option(
        None,
        "also write the network as model.onnx, checked in ONNX Runtime (needs the onnx extra: "
        'pip install -e ".[onnx]")',
        choices=EXPORT_FORMATS,
        tags=(LOCAL,),
    )

    def check(self) -> None:
        if self.export is not None:
            require_onnx()  # one line before any work, not after a long run
        super().check()


def check_exportable(run_dir: str | Path) -> Path:
    """``run_dir`` if it holds a static network (``arch.json`` + ``model.pt``); one line
    otherwise: no nas run there, or a conditional network."""
    return static_run_dir(run_dir, f"holds {CONDITIONAL}")


def export_run(run_dir: str | Path, fmt: str = "onnx") -> dict[str, Any]:
    """Write the network of ``run_dir`` as ``model.onnx`` (see the module); returns the export's
    figures, also added to ``metrics.json`` where the run has one."""
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(
            f"unknown export format {fmt!r} (choose from {', '.join(EXPORT_FORMATS)})"
        )
    require_onnx()
    d = check_exportable(run_dir)
    spec = WidthSpec.load(d / "arch.json")
    model = load_model(d)
    figures = {"onnx_file": "model.onnx", **export_onnx(model, spec, d / "model.onnx")}
    metrics = d / "metrics.json"
    if metrics.is_file():
        write_json(metrics, {**read_json(metrics, "metrics file"), **figures})
    return figures
