"""Figures a run writes (matplotlib, no display needed; imported only when a figure is drawn)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import ConfigError
from nas.io import atomic_write_bytes, read_csv, read_json
from search_spaces import WidthSpec

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend (no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: str | Path) -> None:
    """Save as PNG atomically and close the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_widths(spec: WidthSpec, path: str | Path, *, title: str | None = None) -> None:
    """Kept width of every unit against its full width, in network order."""
    space = spec.get_space()
    units = space.units
    fig, ax = pyplot().subplots(figsize=(max(6.0, 0.28 * len(units) + 2), 3.8))
    xs = range(len(units))
    full = [u.max_width for u in units]
    kept = [spec.widths[u.name] for u in units]
    colors = ["tab:orange" if u.kind != "block" else "tab:blue" for u in units]
    ax.bar(xs, full, color="lightgray", label="full width")
    ax.bar(xs, kept, color=colors, label="kept (blue: block-internal, orange: stage/stem)")
    ax.set_xticks(list(xs))
    ax.set_xticklabels([u.name for u in units], rotation=90, fontsize=7)
    ax.set_ylabel("channels")
    ratio = spec.macs_ratio()
    ax.set_title(
        title
        or f"{space.name}: {ratio:.1%} of the MACs, "
        f"{space.params(spec.widths) / space.params():.1%} of the parameters"
    )
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_search_curves(records: Sequence[Any], target_ratio: float, path: str | Path) -> None:
    """Per epoch: MACs against the target, the width distributions (how decided they are, and
    the temperature), the losses and the budget multiplier, the argmax network's accuracy."""
    epochs = [r.epoch for r in records]
    fig, axes = pyplot().subplots(2, 2, figsize=(11, 7.2))
    ax = axes[0][0]
    ax.plot(epochs, [r.expected_macs_ratio for r in records], label="expected (relaxed)")
    ax.plot(epochs, [r.argmax_macs_ratio for r in records], label="argmax widths")
    ax.axhline(target_ratio, color="black", linestyle="--", linewidth=1, label="target")
    ax.set_title("MACs / full network")
    ax.legend(fontsize=8, loc="best")
    ax = axes[0][1]
    ax.plot(epochs, [r.confidence for r in records], label="mean largest probability")
    ax.plot(epochs, [r.entropy for r in records], label="mean entropy / log(choices)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("width distributions")
    tau = ax.twinx()
    tau.plot(epochs, [r.tau for r in records], color="tab:purple", linestyle=":", label="tau")
    tau.set_yscale("log")
    tau.set_ylabel("temperature (dotted)")
    ax.legend(fontsize=8, loc="center left")
    ax = axes[1][0]
    ax.plot(epochs, [r.train_loss for r in records], label="weights: train CE")
    arch = [(r.epoch, r.arch_loss) for r in records if r.arch_loss is not None]
    if arch:
        ax.plot(*zip(*arch, strict=True), label="architecture: CE")
    ax.set_ylabel("loss")
    ax.set_title("losses (budget multiplier dashed)")
    ax.legend(fontsize=8, loc="upper right")
    mult = ax.twinx()
    mult.plot(epochs, [r.multiplier for r in records], color="tab:red", linestyle="--")
    mult.set_ylabel("budget multiplier")
    ax = axes[1][1]
    ax.plot(epochs, [r.val_acc for r in records], color="tab:green")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("validation accuracy of the argmax network")
    for a in (axes[1][0], axes[1][1]):
        a.set_xlabel("epoch")
    fig.tight_layout()
    save_figure(fig, path)


def plot_rank_scatter(evidence: dict[str, Any], path: str | Path) -> None:
    """Each method's score against the stand-alone accuracy of the held-out sub-networks."""
    rows = evidence["holdout"]
    table = evidence["table"]
    truth = [r["true_acc"] for r in rows]
    panels = [
        ("gcn", "GCN prediction"),
        ("supernet", "supernet score (val acc, %)"),
        ("macs", "MACs"),
        ("synflow", "synflow (log10)"),
    ]
    fig, axes = pyplot().subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for ax, (key, label) in zip(axes, panels, strict=True):
        if key == "macs":
            xs = [float(r["macs"]) for r in rows]
        elif key == "synflow":
            xs = [math.log10(max(float(r["synflow"]), 1e-300)) for r in rows]
        else:
            xs = [float(r[key]) for r in rows]
        ax.scatter(xs, truth, s=14)
        corr = table[key]
        ax.set_title(
            f"{key}: tau {corr['kendall_tau']:+.2f}, rho {corr['spearman']:+.2f}", fontsize=10
        )
        ax.set_xlabel(label)
    axes[0].set_ylabel("stand-alone test accuracy (%)")
    save_figure(fig, path)


@dataclass
class SweepPoints:
    """What ``nas plot pareto`` draws of one sweep directory: (MAC ratio, accuracy %) pairs."""

    trials: list[tuple[float, float]]  # every completed trial
    front: list[tuple[float, float]]  # pareto.csv
    uniform: list[tuple[float, float]]  # uniform.csv
    full_acc: float | None  # metrics.json


def read_sweep_points(d: Path) -> SweepPoints:
    """The points of the sweep in ``d``; a missing ``pareto.csv``, a table without the needed
    columns or with a cell that is not a number, or a corrupt ``metrics.json`` raise a one-line
    :class:`~nas.errors.ConfigError` (``trials.csv``, ``uniform.csv`` and ``metrics.json`` may
    be absent)."""
    if not (d / "pareto.csv").is_file():
        raise ConfigError(f"{d} is not a sweep directory (no pareto.csv)")
    trials = [r for r in _table(d / "trials.csv", ("state",)) if r["state"] == "COMPLETE"]
    full_acc = None
    if (d / "metrics.json").is_file():
        value = read_json(d / "metrics.json", "sweep metrics").get("full_acc")
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{d / 'metrics.json'} has no number full_acc")
        full_acc = float(value)
    return SweepPoints(
        trials=_points(d / "trials.csv", trials, "searched_acc"),
        front=_points(d / "pareto.csv", _table(d / "pareto.csv", ()), "searched_acc"),
        uniform=_points(d / "uniform.csv", _table(d / "uniform.csv", ()), "test_acc"),
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


def _points(path: Path, rows: Sequence[dict[str, str]], acc: str) -> list[tuple[float, float]]:
    points = []
    for i, row in enumerate(rows, start=2):
        pair = []
        for column in ("macs_ratio", acc):
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


def plot_pareto(runs: Sequence[tuple[str, Path]], path: str | Path) -> None:
    """Accuracy against MACs: each sweep's Pareto front (and its other trials), its
    uniform-width curve, and the full network. Several sweeps overlay on one figure. Every
    sweep is read and checked (:func:`read_sweep_points`) before anything is drawn."""
    sweeps = [(label, read_sweep_points(Path(d))) for label, d in runs]
    fig, ax = pyplot().subplots(figsize=(6.5, 4.5))
    for i, (label, s) in enumerate(sweeps):
        color = f"C{i}"
        ax.scatter(
            [m for m, _ in s.trials], [a for _, a in s.trials], color=color, alpha=0.25, s=14
        )
        ax.plot(
            [m for m, _ in s.front],
            [a for _, a in s.front],
            "o-",
            color=color,
            label=f"{label}: searched (Pareto front)",
        )
        if s.uniform:
            ax.plot(
                [m for m, _ in s.uniform],
                [a for _, a in s.uniform],
                "s--",
                color=color,
                alpha=0.7,
                label=f"{label}: uniform width",
            )
        if s.full_acc is not None:
            ax.scatter(
                [1.0],
                [s.full_acc],
                marker="*",
                s=160,
                color=color,
                edgecolor="black",
                label=f"{label}: full network",
                zorder=3,
            )
    ax.set_xlabel("MACs / full network")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy against compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_transfer(metrics: dict[str, Any], path: str | Path) -> None:
    """Test accuracy of the found, full and uniform-width networks on the new task."""
    rows = metrics["compare"]
    fig, ax = pyplot().subplots(figsize=(6, 3.8))
    labels = [f"{r['network']}\n{r['macs_ratio']:.0%} MACs" for r in rows]
    accs = [r["test_acc"] for r in rows]
    bars = ax.bar(labels, accs, color=["tab:blue", "tab:gray", "tab:orange"][: len(rows)])
    for bar, acc in zip(bars, accs, strict=True):
        ax.annotate(
            f"{acc:.2f}",
            (bar.get_x() + bar.get_width() / 2, acc),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    low = min(accs)
    ax.set_ylim(max(0.0, low - 10), min(100.0, max(accs) + 3))
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{metrics['space']} transferred to {metrics.get('dataset', 'new task')}")
    save_figure(fig, path)
