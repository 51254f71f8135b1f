"""The files a sweep writes, read back: the points ``nas plot pareto`` draws.

``nas sweep`` writes ``trials.csv``, ``pareto.csv``, ``uniform.csv`` and ``metrics.json``
(:mod:`nas.sweep.run`); this module owns reading them (and the ``metrics.json`` of single
``nas search`` / ``nas prune`` runs), checked, into :class:`~nas.plots.SweepPoints`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from nas.errors import ConfigError
from nas.io import read_csv, read_json
from nas.plots import SweepPoints, plot_pareto

__all__ = [
    "PARETO_AXES",
    "RUN_ACCURACY",
    "plot_fronts",
    "read_groups",
    "read_points",
    "read_run_point",
    "read_sweep_points",
]


# a single run's metrics.json: per command, a key only its runs write and the accuracy key of
# its network, and its reference's (the uniform twin; for nas compress the same network
# fine-tuned unclustered)
RUN_ACCURACY = {
    "search": ("searched_acc", "searched_acc"),
    "prune": ("pruned_acc", "pruned_acc"),
    "compress": ("clustered_acc", "clustered_acc"),
    "scale": ("phi", "test_acc"),  # a nas train run has test_acc too
}
REFERENCE_ACCURACY = {"clustered_acc": "uncompressed_acc"}  # else uniform_acc


# the x axis of nas plot pareto, per --cost: the run's key, its reference's, the label
PARETO_AXES = {
    "macs": ("macs_ratio", "uniform_macs_ratio", "MACs / full network"),
    "latency": ("latency_ratio", "uniform_latency_ratio", "measured latency / full network"),
    "size": ("file_bytes", "model_bytes", "model file (KB)"),
}


def read_run_point(d: Path, cost: str = "macs") -> SweepPoints:
    """The point of a finished ``nas search``, ``prune``, ``scale`` or ``compress`` run directory
    (and its reference with ``--compare``, and the full network) at its ``cost``: the MAC
    ratio, the latency ratio measured by a ``--cost latency`` search, or the size of the saved
    network (``--cost size``: ``clustered.pt`` for a clustering, else ``model.pt``, in KB); a
    one-line :class:`ConfigError` for a directory that is none of these, or a run without that
    cost."""
    path = d / "metrics.json"
    if not path.is_file():
        raise ConfigError(
            f"{d} is neither a sweep directory (no pareto.csv) nor a finished search, prune, "
            "scale or compress run (no metrics.json)"
        )
    metrics = read_json(path, "run metrics")
    acc_key = next((acc for mark, acc in RUN_ACCURACY.values() if mark in metrics), None)
    if acc_key is None:
        raise ConfigError(f"{path} was not written by nas search, prune, scale or compress")
    if cost == "size":
        metrics.setdefault("file_bytes", _size(d / "model.pt"))
        metrics = {
            k: v / 1024 if k in ("file_bytes", "model_bytes") else v for k, v in metrics.items()
        }

    def number(key: str) -> float:
        value = metrics.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{path} has no number {key}")
        return float(value)

    x, ux, _ = PARETO_AXES[cost]
    if x not in metrics:
        raise ConfigError(f"{path} has no {x} (a --cost {cost} plot reads --cost {cost} searches)")
    point = [(number(x), number(acc_key))]
    reference = REFERENCE_ACCURACY.get(acc_key, "uniform_acc")
    uniform = [(number(ux), number(reference))] if reference in metrics and ux in metrics else []
    full = number("baseline_acc") if "baseline_acc" in metrics and cost != "size" else None
    what = "unclustered, fine-tuned the same way" if reference != "uniform_acc" else "uniform width"
    return SweepPoints(
        trials=[], front=point, uniform=uniform, full_acc=full, sweep=False, reference=what
    )


def _size(path: Path) -> float:
    if not path.is_file():
        raise ConfigError(f"{path.parent} has no saved network (model.pt) to size")
    return float(path.stat().st_size)


def read_points(d: Path, cost: str = "macs") -> SweepPoints:
    """A sweep directory's points (:func:`read_sweep_points`), else a run's
    (:func:`read_run_point`)."""
    if not (d / "pareto.csv").is_file():
        return read_run_point(d, cost)
    if cost == "size":
        raise ConfigError(
            f"{d} is a sweep, whose tables hold no network sizes: --cost size plots runs"
        )
    return read_sweep_points(d, cost)


def read_sweep_points(d: Path, cost: str = "macs") -> SweepPoints:
    """The points of the sweep in ``d`` at their ``cost`` ratio (MACs, or for a ``--cost
    latency`` sweep the measured latency); a missing ``pareto.csv``, a table without the needed
    columns or with a cell that is not a number, a corrupt ``metrics.json`` or a sweep without
    that cost raise a one-line :class:`~nas.errors.ConfigError` (``trials.csv``,
    ``uniform.csv`` and ``metrics.json`` may be absent)."""
    if not (d / "pareto.csv").is_file():
        raise ConfigError(f"{d} is not a sweep directory (no pareto.csv)")
    trials = [r for r in _table(d / "trials.csv", ("state",)) if r["state"] == "COMPLETE"]
    full_acc = None
    swept = "macs"
    if (d / "metrics.json").is_file():
        metrics = read_json(d / "metrics.json", "sweep metrics")
        value = metrics.get("full_acc")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{d / 'metrics.json'} has no number full_acc")
        full_acc = float(value)
        swept = str(metrics.get("cost", "macs"))
    if cost != "macs" and swept != cost:
        raise ConfigError(f"{d} is a sweep of {swept} budgets: plot it with --cost {swept}")
    x = PARETO_AXES[cost][0]
    return SweepPoints(
        trials=_points(d / "trials.csv", trials, "searched_acc", x),
        front=_points(d / "pareto.csv", _table(d / "pareto.csv", ()), "searched_acc", x),
        uniform=_points(d / "uniform.csv", _table(d / "uniform.csv", ()), "test_acc", x),
        full_acc=full_acc,
    )


def _table(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV file written by nas sweep ([] if absent), each with ``columns``."""
    if not path.is_file():
        return []
    rows = read_csv(path)
    for i, row in enumerate(rows, start=2):
        missing = [c for c in columns if row.get(c) is None]
        if missing:
            raise ConfigError(f"{path} line {i} has no {missing[0]} column (not a sweep table)")
    return rows


def _points(
    path: Path, rows: Sequence[dict[str, str]], acc: str, x: str = "macs_ratio"
) -> list[tuple[float, float]]:
    points = []
    for i, row in enumerate(rows, start=2):
        pair = []
        for column in (x, acc):
            text = row.get(column)
            if text is None:
                raise ConfigError(f"{path} has no {column} column (not a sweep table)")
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"{path} line {i}: {column} is not a number: {text!r}") from None
            if not math.isfinite(value):
                raise ConfigError(f"{path} line {i}: {column} is not finite: {text!r}")
            pair.append(value)
        points.append((pair[0], pair[1]))
    return points


def read_groups(
    runs: Sequence[tuple[str, Path]], cost: str = "macs"
) -> list[tuple[str, SweepPoints]]:
    """The points of every ``(label, directory)``, those under one label merged into one curve
    (a method over budgets); every directory is read and checked before anything is drawn."""
    groups: dict[str, SweepPoints] = {}
    for label, d in runs:
        points = read_points(Path(d), cost)
        groups[label] = groups[label].merged(points) if label in groups else points
    return list(groups.items())


def plot_fronts(runs: Sequence[tuple[str, Path]], path: str | Path, cost: str = "macs") -> None:
    """``nas plot pareto``: the points of ``runs`` (:func:`read_groups`, all checked first)
    against their ``cost`` ratio (MACs, or the latency measured by ``--cost latency``
    searches), drawn to ``path``."""
    plot_pareto(read_groups(runs, cost), path, PARETO_AXES[cost][2])
