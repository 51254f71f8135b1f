"""Figures a run writes (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from nas.io import atomic_write_bytes
from search_spaces import WidthSpec


def save_figure(fig: Figure, path: str | Path) -> None:
    """Save as PNG atomically and close the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_widths(spec: WidthSpec, path: str | Path, *, title: str | None = None) -> None:
    """Kept width of every unit against its full width, in network order."""
    space = spec.get_space()
    units = space.units
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(units) + 2), 3.8))
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
    """Temperature, MACs against the target, losses and validation accuracy per epoch."""
    epochs = [r.epoch for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    ax.plot(epochs, [r.tau for r in records], color="tab:purple")
    ax.set_yscale("log")
    ax.set_title("Gumbel-softmax temperature")
    ax = axes[1]
    ax.plot(epochs, [r.expected_macs_ratio for r in records], label="expected (relaxed)")
    ax.plot(epochs, [r.argmax_macs_ratio for r in records], label="argmax widths")
    ax.axhline(target_ratio, color="black", linestyle="--", linewidth=1, label="target")
    ax.set_title("MACs / full network")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(epochs, [r.train_loss for r in records], label="train CE (weights)")
    arch = [(r.epoch, r.arch_loss) for r in records if r.arch_loss is not None]
    if arch:
        ax.plot(*zip(*arch, strict=True), label="val CE (architecture)")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8, loc="upper left")
    acc = ax.twinx()
    acc.plot(epochs, [r.val_acc for r in records], color="tab:green", label="val acc (argmax)")
    acc.set_ylabel("val accuracy (%)")
    acc.legend(fontsize=8, loc="upper right")
    ax.set_title("losses and accuracy")
    for a in axes:
        a.set_xlabel("epoch")
    save_figure(fig, path)
