"""The sweep's tables: trial rows, the Pareto front, hypervolume, CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

from nas.io import atomic_write_text
from nas.sweep.config import AXES, CostAxis

__all__ = [
    "LATENCY_METRICS",
    "OBJECTIVE",
    "TRIAL_METRICS",
    "hypervolume",
    "pareto_rows",
    "trial_metrics",
    "trial_rows",
    "write_csv",
]

# what a trial records of its run's metrics.json (as user attributes, and in trials.csv)
TRIAL_METRICS = (
    "searched_val_acc",
    "searched_acc",
    "macs",
    "macs_ratio",
    "params",
    "baseline_acc",
    "relaxation_gap",
)
# and, from a --cost latency search, its predicted and measured latency
LATENCY_METRICS = ("predicted_latency_ms", "predicted_latency_ratio", "latency_ms", "latency_ratio")
OBJECTIVE = "searched_val_acc"  # what the study maximises: never the test accuracy


def trial_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a trial records of its run's metrics (:data:`TRIAL_METRICS`, and the latency ones
    where the run has them)."""
    return {k: metrics[k] for k in TRIAL_METRICS} | {
        k: metrics[k] for k in LATENCY_METRICS if k in metrics
    }


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        row |= {k: v for k, v in t.params.items()}
        row |= {k: t.user_attrs.get(k) for k in (*TRIAL_METRICS, "seconds", "run_dir", "same_as")}
        row |= {k: t.user_attrs[k] for k in LATENCY_METRICS if k in t.user_attrs}
        rows.append(row)
    return rows


def pareto_rows(
    rows: Sequence[dict[str, Any]], axis: CostAxis = AXES["macs"]
) -> list[dict[str, Any]]:
    """Completed trials that no other completed trial dominates (accuracy up, cost down: MACs,
    or ``axis``'s), by increasing cost. A trial that reused another's result (``same_as``) is
    that result again: it is left out, so every row is a distinct network."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("same_as") in (None, "")]
    front = [r for r in done if not any(_dominates(o, r, axis.value) for o in done)]
    return sorted(front, key=lambda r: r[axis.value])


def _dominates(a: dict[str, Any], b: dict[str, Any], cost: str) -> bool:
    better_or_equal = a[OBJECTIVE] >= b[OBJECTIVE] and a[cost] <= b[cost]
    strictly = a[OBJECTIVE] > b[OBJECTIVE] or a[cost] < b[cost]
    return better_or_equal and strictly


def hypervolume(points: Sequence[tuple[float, float]], ref_ratio: float = 1.0) -> float:
    """Area dominated by (cost ratio, accuracy/100) points against the reference (ref_ratio,
    0): in [0, 1] when every cost ratio is at most 1; larger is better."""
    pts = sorted((m, a / 100.0) for m, a in points if m <= ref_ratio)
    area, best = 0.0, 0.0
    for i, (m, acc) in enumerate(pts):
        best = max(best, acc)
        right = pts[i + 1][0] if i + 1 < len(pts) else ref_ratio
        area += best * (right - m)
    return area


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())
