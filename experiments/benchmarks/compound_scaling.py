"""Compound scaling against uniform width and the searched widths, all trained from scratch.

On real CIFAR-10 images (``cifar10-5k.npz``), ``resnet20_b`` at 50 % and 25 % of the MACs, per
seed:

* ``compound``: ``nas scale --compare`` (the (alpha, beta, gamma) grid solved to the target,
  every distinct candidate trained ``--grid-epochs`` and judged on the validation split, the
  chosen one trained ``--epochs`` from scratch);
* ``uniform``: its ``--compare`` reference, the uniform-width network of the same MACs at the
  space's own depth and input size, trained the same way (same epochs, seed, batches);
* ``searched``: the widths ``nas search`` delivered for that seed and target (``search_quality.py``
  rows, its default configuration) trained the same way from scratch, when that row exists.

No distillation (a teacher at another input size would see other images): the three differ
only in their shapes. The paired differences compound - uniform and searched - uniform (mean,
SE, 95 % CI) are reported; ``--out/scaling.png`` draws accuracy against the MAC ratio (the
Pareto plot's compound-scaled curve beside uniform width and the search). Rows go to
``--out/results.jsonl`` as they land (re-running resumes).

    python experiments/benchmarks/compound_scaling.py \\
        --dataset npz:../shared/data/cifar10-5k.npz --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import nas
from nas.data import DataOptions, reseeded
from nas.engine import TrainConfig, evaluate, seed_everything, train_model
from nas.plots import pyplot, save_figure
from nas.scaling import run_scale

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import append_row, default_widths, load_rows, mean_se, provenance, t_interval

ROOT = Path(__file__).resolve().parents[2]
SPACE = "resnet20_b"
TARGETS = (0.5, 0.25)


def from_scratch(
    widths: dict[str, int], data: Any, config: TrainConfig
) -> tuple[float, float, float]:
    """``SPACE`` at ``widths`` trained from scratch like ``nas scale`` trains: test and
    validation accuracy, MAC ratio."""
    space = nas.create_space(
        SPACE,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    seed_everything(config.seed)
    model = space.build(widths)
    train_model(model, reseeded(data.train, config.seed), config=config, progress=False)
    spec = space.spec(widths)
    return (
        evaluate(model, data.test).accuracy,
        evaluate(model, data.val).accuracy,
        spec.macs() / space.macs(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dataset", required=True, help="e.g. npz:../shared/data/cifar10-5k.npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    parser.add_argument("--epochs", type=int, default=20, help="training epochs of every network")
    parser.add_argument("--grid-epochs", type=int, default=5)
    parser.add_argument(
        "--search-results", default=str(ROOT / "experiments/results/search_quality/results.jsonl")
    )
    parser.add_argument("--work", default=str(ROOT / "runs/compound_scaling"))
    parser.add_argument("--out", default=str(ROOT / "experiments/results/compound_scaling"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only the report and the figure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows = load_rows(results)
    if not args.report:
        run(args, rows, results)
    text = report(rows)
    (out / "report.md").write_text(text)
    if rows:
        figure(rows, out / "scaling.png")
    print(text)


def run(args: argparse.Namespace, rows: list[dict[str, Any]], results: Path) -> None:
    done = {(r["target"], r["seed"]) for r in rows}
    options = DataOptions(dataset=args.dataset)
    for target in args.targets:
        for seed in args.seeds:
            if (target, seed) in done:
                continue
            config = TrainConfig(epochs=args.epochs, lr=0.1, seed=seed)
            start = time.perf_counter()
            m = run_scale(
                SPACE,
                options,
                config,
                target_macs=f"{target:g}",
                grid_epochs=args.grid_epochs,
                out_dir=Path(args.work) / f"{target:g}-{seed}",
                compare=True,
                overwrite=True,
                progress=False,
                threads=args.threads,
            )
            row: dict[str, Any] = {
                "space": SPACE,
                "target": target,
                "seed": seed,
                "epochs": args.epochs,
                "grid_epochs": args.grid_epochs,
                **{k: m[k] for k in _KEEP},
            }
            widths = default_widths(Path(args.search_results), SPACE, target, seed)
            if widths is not None:  # the data as nas scale loads them for this seed
                acc, val, ratio = from_scratch(widths, options.load(seed), config)
                row |= {"searched_acc": acc, "searched_val_acc": val, "searched_macs_ratio": ratio}
            row |= {"seconds": round(time.perf_counter() - start, 1), **provenance(args.threads)}
            rows.append(row)
            append_row(results, row)
            print(
                f"{target:g} seed {seed}: compound {m['space']} at {m['input_side']}px x"
                f"{m['width_multiplier']:.2f} {m['test_acc']:.2f} % vs uniform "
                f"{m['uniform_acc']:.2f} %"
                + (f", searched {row['searched_acc']:.2f} %" if "searched_acc" in row else ""),
                flush=True,
            )


_KEEP = (
    "test_acc",
    "val_acc",
    "uniform_acc",
    "uniform_val_acc",
    "macs_ratio",
    "uniform_macs_ratio",
    "alpha",
    "beta",
    "gamma",
    "phi",
    "space",
    "input_side",
    "depth_multiplier",
    "width_multiplier",
    "resolution_multiplier",
    "candidates",
)


def report(rows: list[dict[str, Any]]) -> str:
    out = [
        "| target | seeds | compound network (most often) | compound % | uniform % | "
        "compound - uniform (mean +- SE) | 95 % CI | searched - uniform (seeds) | 95 % CI |",
        "| --- " * 9 + "|",
    ]
    for target in sorted({r["target"] for r in rows}, reverse=True):
        g = sorted((r for r in rows if r["target"] == target), key=lambda r: r["seed"])
        d = [r["test_acc"] - r["uniform_acc"] for r in g]
        mean, se, lo, hi = t_interval(d)
        shapes = [f"{r['space']} {r['input_side']}px x{r['width_multiplier']:.2f}" for r in g]
        common = max(set(shapes), key=shapes.count)
        s = [r["searched_acc"] - r["uniform_acc"] for r in g if "searched_acc" in r]
        smean, sse, slo, shi = t_interval(s) if s else (float("nan"),) * 4
        out.append(
            f"| {target:g} | {len(g)} | {common} ({shapes.count(common)}/{len(g)}) | "
            f"{statistics.fmean(r['test_acc'] for r in g):.2f} | "
            f"{statistics.fmean(r['uniform_acc'] for r in g):.2f} | **{mean:+.2f}** +- {se:.2f} | "
            f"[{lo:+.2f}, {hi:+.2f}] | {smean:+.2f} +- {sse:.2f} ({len(s)}) | "
            f"[{slo:+.2f}, {shi:+.2f}] |"
        )
    return "\n".join(out) + "\n"


def figure(rows: list[dict[str, Any]], path: Path) -> None:
    """Accuracy against the MAC ratio: compound scaling, uniform width, searched widths (mean +-
    SE over seeds at each target)."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4.5))
    curves = (
        ("compound scaling", "macs_ratio", "test_acc", "o-"),
        ("uniform width", "uniform_macs_ratio", "uniform_acc", "s--"),
        ("searched widths", "searched_macs_ratio", "searched_acc", "^-"),
    )
    for i, (label, x, y, fmt) in enumerate(curves):
        pts = []
        for target in sorted({r["target"] for r in rows}):
            g = [r for r in rows if r["target"] == target and y in r]
            if not g:
                continue
            mean, se = mean_se([r[y] for r in g])
            pts.append((statistics.fmean(r[x] for r in g), mean, se))
        if pts:
            ax.errorbar(
                [p[0] for p in pts],
                [p[1] for p in pts],
                yerr=[p[2] for p in pts],
                fmt=fmt,
                color=f"C{i}",
                label=label,
                capsize=3,
            )
    ax.set_xlabel("MACs / full network")
    ax.set_ylabel("test accuracy (%), mean +- SE over seeds")
    ax.set_title(f"{SPACE}, trained from scratch: compound scaling against width")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
