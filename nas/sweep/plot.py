"""``nas plot KIND``: figures from finished runs (``pareto``: the fronts of several sweeps, and
the networks of search and prune runs, on one accuracy/MAC plot)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nas.errors import ConfigError
from nas.jobs.base import Command
from nas.options import Options, option
from nas.rundir import check_writable
from nas.sweep.points import plot_fronts

__all__ = ["COMMAND", "ParetoPlotOptions"]


@dataclass
class ParetoPlotOptions(Options):
    group: ClassVar[str] = "pareto"

    dirs: tuple[str, ...] = option(
        (),
        "sweep directories (nas sweep), or nas search / prune / scale / compress run "
        "directories (runs under one label form one curve)",
        positional=True,
        nargs="+",
    )
    labels: str | None = option(None, "comma-separated legend labels")
    cost: str = option(
        "macs",
        "the x axis: MAC ratio, the measured latency ratio of --cost latency searches, or the "
        "saved network's size (nas compress: clustered.pt; others: model.pt)",
        choices=("macs", "latency", "size"),
    )
    out: str = option("pareto.png", "output PNG")
    overwrite: bool = option(False, "replace --out if it exists")


def _pareto(options: ParetoPlotOptions) -> int:
    out = Path(options.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise ConfigError(f"--out must be a .png file, got {out}")
    if out.exists() and not options.overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it, or choose another --out")
    check_writable(out.parent)
    dirs = [Path(d) for d in options.dirs]
    labels = options.labels.split(",") if options.labels else [d.name for d in dirs]
    if len(labels) != len(dirs):
        raise ConfigError(f"{len(labels)} labels for {len(dirs)} directories")
    plot_fronts(list(zip(labels, dirs, strict=True)), out, options.cost)  # checks all first
    print(f"wrote {out}")
    return 0


COMMAND = Command(
    description="Figures from finished runs.",
    subcommands={
        "pareto": (
            "overlay sweeps' Pareto fronts and search/prune runs on one accuracy/MAC plot",
            Command(
                options=(ParetoPlotOptions,),
                run=_pareto,
                description="Overlays the Pareto fronts of sweeps and the networks of search and "
                "prune runs (runs under one --labels entry join into one curve).",
                required=frozenset({"dirs"}),
            ),
        )
    },
)
