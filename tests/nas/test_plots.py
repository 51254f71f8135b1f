"""nas.plots: the figures say what they show (legends, axes) and nothing is cut off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import nas.plots
import search_spaces
from nas.plots import plot_rank_scatter, plot_search_curves, plot_transfer, plot_widths
from nas.width_search.records import SearchRecord


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The figures the plot functions draw (after saving them as usual)."""
    drawn: list[Figure] = []
    save = nas.plots.save_figure

    def keep(fig: Figure, path: str | Path) -> None:
        save(fig, path)
        drawn.append(fig)  # drawn by the save

    monkeypatch.setattr(nas.plots, "save_figure", keep)
    return drawn


def _nothing_touches_the_edge(path: Path) -> None:
    """The saved image has a white margin all round: no label runs off it."""
    image = np.asarray(Image.open(path).convert("L"))
    for edge in (image[:3], image[-3:], image[:, :3], image[:, -3:]):
        assert edge.min() >= 250


@pytest.mark.parametrize(
    ("space", "kinds"),
    [("resnet20", ["block-internal"]), ("resnet20_b", ["stage (residual stream)", "block"])],
)
def test_widths_legend_names_only_the_kinds_of_units_the_space_has(
    tmp_path: Path, figures: list[Figure], space: str, kinds: list[str]
) -> None:
    sp = search_spaces.create(space)
    plot_widths(sp.spec(sp.uniform_widths(0.5)), tmp_path / "widths.png")
    (fig,) = figures
    legend = fig.axes[0].get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[0] == "full width" and len(labels) == 1 + len(kinds)
    for label, kind in zip(labels[1:], kinds, strict=True):
        assert kind in label
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == [u.name for u in sp.units]
    _nothing_touches_the_edge(tmp_path / "widths.png")


def _record(epoch: int, phase: str) -> SearchRecord:
    values: dict[str, Any] = {
        f: 0.5 for f in SearchRecord.__dataclass_fields__ if f not in ("epoch", "phase")
    }
    values["arch_loss"] = None if phase == "warmup" else 0.4
    return SearchRecord(epoch=epoch, phase=phase, **values)


def test_search_curves_keep_their_legends_off_the_curves(
    tmp_path: Path, figures: list[Figure]
) -> None:
    records = [_record(e, "warmup" if e <= 2 else "search") for e in range(1, 7)]
    plot_search_curves(records, 0.5, tmp_path / "curves.png")
    (fig,) = figures
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        # below the axes: the legend's box does not overlap the plotting area
        assert legend.get_window_extent().y1 <= ax.get_window_extent().y0
    multiplier = fig.axes[2].get_legend()
    assert multiplier is not None
    assert [t.get_text() for t in multiplier.get_texts()][-1] == "budget multiplier"
    _nothing_touches_the_edge(tmp_path / "curves.png")


def test_rank_scatter_plots_scores_against_the_true_loss(
    tmp_path: Path, figures: list[Figure]
) -> None:
    rows = [
        {
            "macs": 100 + i,
            "true_loss": 1.0 - 0.1 * i,
            "true_loss_second_seed": 1.0 - 0.09 * i,
            "gcn": 101.0 + i,
            "supernet": -1.0 + 0.1 * i,
            "synflow": 10.0**i,
        }
        for i in range(5)
    ]
    corr = {"kendall_tau": 1.0, "spearman": 1.0}
    evidence = {
        "holdout": rows,
        "table": {k: corr for k in ("gcn", "supernet", "macs", "synflow")},
        "noise_ceiling": corr,
    }
    plot_rank_scatter(evidence, tmp_path / "rank.png")
    (fig,) = figures
    assert "test loss" in fig.axes[0].get_ylabel()
    assert "accuracy" not in " ".join(a.get_xlabel() + a.get_ylabel() for a in fig.axes)
    assert "ranking score" in fig.axes[0].get_xlabel()
    assert fig.axes[-1].get_title().startswith("noise ceiling")
    _nothing_touches_the_edge(tmp_path / "rank.png")


def test_transfer_value_labels_stay_inside_the_frame(tmp_path: Path, figures: list[Figure]) -> None:
    rows = [
        {"network": "found", "macs_ratio": 0.5, "test_acc": 99.5},
        {"network": "full", "macs_ratio": 1.0, "test_acc": 100.0},
        {"network": "uniform", "macs_ratio": 0.5, "test_acc": 97.1},
    ]
    plot_transfer({"space": "resnet20", "compare": rows}, tmp_path / "transfer.png")
    (fig,) = figures
    ax = fig.axes[0]
    frame = ax.get_window_extent()
    for text in ax.texts:
        box = text.get_window_extent()
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, text.get_text()
    _nothing_touches_the_edge(tmp_path / "transfer.png")


def _run_dir(root: Path, name: str, metrics: dict[str, Any]) -> Path:
    import json

    d = root / name
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps(metrics))
    return d


@pytest.mark.e2e
def test_pareto_joins_prune_runs_under_one_label_into_a_curve(
    tmp_path: Path, figures: list[Figure]
) -> None:
    from nas.cli import main

    runs = [
        _run_dir(tmp_path, f"chip-{r}", {"macs_ratio": r, "pruned_acc": a, "baseline_acc": 70.0})
        for r, a in ((0.5, 66.0), (0.25, 60.0))
    ]
    search = _run_dir(
        tmp_path,
        "search",
        {"macs_ratio": 0.5, "searched_acc": 67.0, "uniform_macs_ratio": 0.5, "uniform_acc": 66.5},
    )
    png = tmp_path / "p.png"
    argv = [*map(str, [*runs, search]), "--labels", "chip,chip,search", "--out", str(png)]
    assert main(["plot", "pareto", *argv]) == 0
    ax = figures[0].axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    chip = lines["chip"]
    assert np.asarray(chip.get_xdata()).tolist() == [0.25, 0.5]
    assert np.asarray(chip.get_ydata()).tolist() == [60.0, 66.0]
    assert "search: uniform width" in lines and "search" in lines
    _nothing_touches_the_edge(png)


def test_pareto_refuses_a_run_that_is_not_a_search_prune_scale_or_compress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nas.cli import main

    trained = _run_dir(tmp_path, "trained", {"test_acc": 70.0, "macs": 1})
    code = main(["plot", "pareto", str(trained), "--out", str(tmp_path / "p.png")])
    err = capsys.readouterr().err
    assert code == 2 and "not written by nas search, prune, scale or compress" in err
    assert not (tmp_path / "p.png").exists()


def test_the_widths_plot_draws_the_uniform_widths_beside(
    tmp_path: Path, figures: list[Figure]
) -> None:
    sp = search_spaces.create("resnet20_b")
    found = sp.spec({u.name: max(1, u.max_width // (2 + i % 3)) for i, u in enumerate(sp.units)})
    uniform = sp.spec(sp.uniform_widths(0.5))
    plot_widths(found, tmp_path / "widths.png", uniform=uniform)
    (fig,) = figures
    ax = fig.axes[0]
    (line,) = ax.get_lines()  # one marker per unit at its uniform width
    assert [float(v) for v in np.asarray(line.get_ydata())] == [
        uniform.widths[u.name] for u in sp.units
    ]
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[-1].startswith("uniform width")
    _nothing_touches_the_edge(tmp_path / "widths.png")
