"""Figures a run writes (matplotlib, no display needed; imported only when a figure is drawn)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.io import atomic_write_bytes
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
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", pad_inches=0.2)
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


WIDTH_COLORS = {"stem": "tab:green", "stage": "tab:orange", "block": "tab:blue"}
WIDTH_LABELS = {
    "stem": "kept: stem",
    "stage": "kept: stage (residual stream)",
    "block": "kept: block-internal",
}


def plot_widths(
    spec: WidthSpec,
    path: str | Path,
    *,
    title: str | None = None,
    uniform: WidthSpec | None = None,
) -> None:
    """Kept width of every unit against its full width, in network order; one colour per kind
    of unit the space has; with ``uniform``, the uniform widths of the same budget beside (a
    black step line), so one sees which stages the search thinned or widened."""
    from matplotlib.patches import Patch

    space = spec.get_space()
    units = space.units
    fig, ax = pyplot().subplots(
        figsize=(max(6.0, 0.3 * len(units) + 2.5), 4.2), layout="constrained"
    )
    xs = range(len(units))
    ax.bar(xs, [u.max_width for u in units], color="lightgray")
    ax.bar(xs, [spec.widths[u.name] for u in units], color=[WIDTH_COLORS[u.kind] for u in units])
    if uniform is not None:
        ax.plot(
            xs,
            [uniform.widths[u.name] for u in units],
            color="black",
            marker="_",
            markersize=14,
            linestyle="none",
            label=f"uniform width ({uniform.macs_ratio():.1%} of the MACs)",
        )
    ax.set_xticks(list(xs))
    ax.set_xticklabels([u.name for u in units], rotation=90, fontsize=7)
    ax.set_xlim(-0.6, len(units) - 0.4)
    ax.set_ylabel("channels")
    ratio = spec.macs_ratio()
    ax.set_title(
        title
        or f"{space.name}: {ratio:.1%} of the MACs, "
        f"{space.params(spec.widths) / space.params():.1%} of the parameters",
        fontsize=11,
    )
    kinds = [k for k in WIDTH_COLORS if any(u.kind == k for u in units)]
    handles = [Patch(color="lightgray", label="full width")]
    handles += [Patch(color=WIDTH_COLORS[k], label=WIDTH_LABELS[k]) for k in kinds]
    lines, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*handles, *lines], fontsize=8, loc="upper left", framealpha=0.9)
    save_figure(fig, path)


def plot_search_curves(
    records: Sequence[Any], target_ratio: float | None, path: str | Path
) -> None:
    """Per epoch: MACs against the target, the width distributions (how decided they are, and
    the temperature), the losses and the budget multiplier, the argmax network's accuracy.
    The warm-up epochs (weights only) are shaded."""
    epochs = [r.epoch for r in records]
    warm = [r.epoch for r in records if r.phase == "warmup"]
    fig, axes = pyplot().subplots(2, 2, figsize=(11, 7.6), layout="constrained")

    def below(ax: Any, *lines: Any) -> None:  # a legend under the axes: it hides no curve
        ax.legend(
            handles=list(lines),
            fontsize=8,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.13),
            ncol=len(lines),
            frameon=False,
        )

    for ax in axes.flat:
        if warm:
            ax.axvspan(min(warm) - 0.5, max(warm) + 0.5, color="0.93", zorder=0)
        ax.set_xlabel("epoch (shaded: warm-up)" if warm else "epoch", fontsize=9)
        ax.grid(alpha=0.3)
    ax = axes[0][0]
    (expected,) = ax.plot(epochs, [r.expected_macs_ratio for r in records], label="expected")
    (argmax,) = ax.plot(epochs, [r.argmax_macs_ratio for r in records], label="argmax widths")
    lines = [expected, argmax]
    if target_ratio is not None:  # a MAC target (a latency search has none in MACs)
        lines.append(
            ax.axhline(target_ratio, color="black", linestyle="--", linewidth=1, label="target")
        )
    ax.set_title("MACs / full network")
    below(ax, *lines)
    ax = axes[0][1]
    (conf,) = ax.plot(epochs, [r.confidence for r in records], label="mean largest probability")
    (ent,) = ax.plot(epochs, [r.entropy for r in records], label="mean entropy / log(choices)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("width distributions")
    tau_ax = ax.twinx()
    (tau,) = tau_ax.plot(
        epochs, [r.tau for r in records], color="tab:purple", linestyle=":", label="temperature"
    )
    tau_ax.set_yscale("log")
    tau_ax.set_ylabel("temperature (log scale)")
    below(ax, conf, ent, tau)
    ax = axes[1][0]
    lines = ax.plot(epochs, [r.train_loss for r in records], label="weights: train CE")
    arch = [(r.epoch, r.arch_loss) for r in records if r.arch_loss is not None]
    if arch:
        lines += ax.plot(*zip(*arch, strict=True), label="architecture: val CE")
    ax.set_ylabel("loss")
    ax.set_title("losses and the budget multiplier")
    mult_ax = ax.twinx()
    lines += mult_ax.plot(
        epochs,
        [r.multiplier for r in records],
        color="tab:red",
        linestyle="--",
        label="budget multiplier",
    )
    mult_ax.set_ylabel("budget multiplier")
    below(ax, *lines)
    ax = axes[1][1]
    ax.plot(epochs, [r.val_acc for r in records], color="tab:green")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("validation accuracy of the argmax network")
    save_figure(fig, path)


def plot_rank_scatter(evidence: dict[str, Any], path: str | Path) -> None:
    """Each method's score of the held-out sub-networks against their true quality (test loss
    after the product's fine-tune), and the truth against itself with a second seed (the noise
    ceiling)."""
    rows = evidence["holdout"]
    table = evidence["table"]
    truth = [r["true_loss"] for r in rows]
    panels = [
        ("gcn", "GCN ranking score (unitless; higher = better)"),
        ("supernet", "supernet score (-val loss; higher = better)"),
        ("macs", "MACs"),
        ("synflow", "synflow (log10)"),
        ("ceiling", "test loss with a second seed"),
    ]
    fig, axes = pyplot().subplots(
        1, len(panels), figsize=(3.6 * len(panels), 3.6), sharey=True, layout="constrained"
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        if key == "synflow":
            xs = [math.log10(max(float(r["synflow"]), 1e-300)) for r in rows]
        elif key == "ceiling":
            xs = [float(r["true_loss_second_seed"]) for r in rows]
        else:
            xs = [float(r[key]) for r in rows]
        ax.scatter(xs, truth, s=14, color="tab:gray" if key == "ceiling" else "tab:blue")
        corr = evidence["noise_ceiling"] if key == "ceiling" else table[key]
        name = "noise ceiling" if key == "ceiling" else key
        ax.set_title(f"{name}: Kendall {_corr(corr['kendall_tau'])}", fontsize=10)
        ax.set_xlabel(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("true test loss after fine-tuning (lower = better)", fontsize=9)
    fig.suptitle(
        f"ranking {len(rows)} held-out sub-networks (a good score falls as the loss rises)",
        fontsize=11,
    )
    save_figure(fig, path)


def _corr(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.2f}"


@dataclass
class SweepPoints:
    """What ``nas plot pareto`` draws of one sweep directory: (MAC ratio, accuracy %) pairs."""

    trials: list[tuple[float, float]]  # every completed trial
    front: list[tuple[float, float]]  # pareto.csv
    uniform: list[tuple[float, float]]  # uniform.csv
    full_acc: float | None  # metrics.json
    sweep: bool = True  # False: the points of single runs (nas search, prune, scale, compress)
    reference: str = "uniform width"  # what the ``uniform`` points are

    def merged(self, other: SweepPoints) -> SweepPoints:
        """Both sets of points on one curve (runs under one label: a method over budgets)."""
        return SweepPoints(
            trials=sorted(self.trials + other.trials),
            front=sorted(self.front + other.front),
            uniform=sorted(self.uniform + other.uniform),
            full_acc=self.full_acc if self.full_acc is not None else other.full_acc,
            sweep=self.sweep and other.sweep,
            reference=self.reference,
        )


def plot_pareto(
    groups: Sequence[tuple[str, SweepPoints]], path: str | Path, xlabel: str = "MACs / full network"
) -> None:
    """Accuracy against compute (the x axis: ``xlabel``, say the MAC ratio or the measured
    latency ratio): each sweep's Pareto front (and its other trials), its uniform-width curve,
    and the full network; or the networks of ``nas search`` / ``nas prune`` runs, one curve per
    label (a method over budgets). Several overlay on one figure. The points are read by
    :mod:`nas.sweep.points`, which owns the files a sweep writes."""
    sweeps = list(groups)
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
            label=f"{label}: searched (Pareto front)" if s.sweep else label,
        )
        if s.uniform:
            ax.plot(
                [m for m, _ in s.uniform],
                [a for _, a in s.uniform],
                "s--",
                color=color,
                alpha=0.7,
                label=f"{label}: {s.reference}",
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
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy against compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_transfer(metrics: dict[str, Any], path: str | Path) -> None:
    """Test accuracy of the found, full and uniform-width networks on the new task."""
    rows = metrics["compare"]
    fig, ax = pyplot().subplots(figsize=(6, 3.8), layout="constrained")
    labels = [f"{r['network']}\n{r['macs_ratio']:.0%} MACs" for r in rows]
    accs = [r["test_acc"] for r in rows]
    bars = ax.bar(labels, accs, color=["tab:blue", "tab:gray", "tab:orange"][: len(rows)])
    low, high = min(accs), max(accs)
    top = min(100.0, high + max(3.0, 0.15 * (high - low + 1)))
    ax.set_ylim(max(0.0, low - 10), top)
    for bar, acc in zip(bars, accs, strict=True):  # labels inside the bar tops: never clipped
        ax.annotate(
            f"{acc:.2f} %",
            (bar.get_x() + bar.get_width() / 2, acc),
            xytext=(0, -4),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=9,
            color="white",
        )
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{metrics['space']} transferred to {metrics.get('dataset', 'new task')}")
    save_figure(fig, path)


def plot_similarity(
    matrices: dict[str, list[list[float]]], names: Sequence[str], path: str | Path
) -> None:
    """One heatmap per measure (mean over units, criteria x criteria), values written in."""
    plt = pyplot()
    fig, axes = plt.subplots(
        1,
        len(matrices),
        figsize=(4.4 * len(matrices), 3.8),
        squeeze=False,
        layout="constrained",
    )
    for ax, (measure, matrix) in zip(axes[0], matrices.items(), strict=True):
        low = -1.0 if measure != "keep_overlap" else 0.0
        image = ax.imshow(matrix, vmin=low, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(names)), labels=list(names), rotation=45, ha="right")
        ax.set_yticks(range(len(names)), labels=list(names))
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                text = "-" if math.isnan(value) else f"{value:.2f}"
                light = not math.isnan(value) and (value - low) / (1 - low) > 0.6  # viridis
                color = "black" if light else "white"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
        ax.set_title(measure.replace("_", " "))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("criteria similarity (mean over units)")
    save_figure(fig, path)


def plot_class_maps(
    images: Any, maps: Any, path: str | Path, title: str, labels: Sequence[str] = ()
) -> None:
    """One row of images (``(N, C, H, W)``, shown min-max scaled, grey for one channel) and
    under them the same images with their maps (``(N, H, W)`` in [0, 1]) overlaid."""
    plt = pyplot()
    n = max(1, len(images))
    fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
    for i in range(n):
        for row in (0, 1):
            axes[row][i].axis("off")
        if i >= len(images):
            continue
        img = images[i].float()
        img = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-12)
        shown = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
        cmap = "gray" if img.shape[0] == 1 else None
        axes[0][i].imshow(shown.numpy(), cmap=cmap)
        axes[1][i].imshow(shown.numpy(), cmap=cmap)
        axes[1][i].imshow(maps[i].numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        if i < len(labels):
            axes[0][i].set_title(labels[i], fontsize=7)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)
