"""Model size against accuracy: width pruning alone, DKM weight clustering alone, and both.

On real CIFAR-10 images (``cifar10-5k.npz``), ``resnet20_b``, from the baseline of
``search_quality.py`` (cached there):

* the networks: the full baseline, and ``nas prune --criterion l1 --allocation uniform`` at 50 %
  and 25 % of the MACs (10 fine-tuning epochs, seed 0; cached under ``--cache``);
* each clustered by ``nas compress --clusters K --compare`` for K in 4, 16, 256 (2, 4, 8 bits per
  weight), ``--epochs`` of fine-tuning with distillation from the network as it was; its
  reference (``--compare``) is the same network fine-tuned the same way (same epochs, teacher,
  seed and batches) without clustering: clustering's cost, not the extra epochs' gain.

Per network, K and seed the row holds the clustered accuracy, the reference's, the bits per
weight and both files' sizes. The report gives the paired difference clustered - reference
(mean, SE, 95 % CI) per network and K, and ``--out/size.png`` draws accuracy against the saved
file's size: width pruning alone (the references, 32-bit floats), clustering alone (the full
network at 2, 4, 8 bits) and both (the pruned networks clustered).

    python experiments/benchmarks/compression.py --dataset npz:../shared/data/cifar10-5k.npz \\
        --seeds 0 1 2
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
from nas.compression import run_compress
from nas.data import DataOptions, load_data, reseeded
from nas.engine import Distillation, TrainConfig
from nas.extraction import save_model
from nas.plots import pyplot, save_figure
from nas.pruning import PruneConfig, prune_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import (
    SETTINGS,
    append_row,
    load_rows,
    mean_se,
    provenance,
    t_interval,
    tag,
    train_baseline,
)

ROOT = Path(__file__).resolve().parents[2]
SPACE = "resnet20_b"
NETWORKS = {"full": None, "pruned 50 %": 0.5, "pruned 25 %": 0.25}
CLUSTERS = (4, 16, 256)


def prepare(args: argparse.Namespace) -> dict[str, Path]:
    """The run directories of the networks to cluster (cached)."""
    settings = dict(SETTINGS, dataset=args.dataset)
    data = load_data(args.dataset, seed=0)
    assert data.val is not None
    space = nas.create_space(
        SPACE,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    cache = Path(args.cache)
    baseline = train_baseline(
        space,
        data,
        settings["baseline_epochs"],
        cache / f"baseline-{SPACE}-{tag(settings, 'baseline_epochs')}.pt",
    )
    dirs: dict[str, Path] = {}
    for name, target in NETWORKS.items():
        d = Path(args.work) / _slug(name)
        if not (d / "model.pt").is_file():
            if target is None:
                save_model(baseline, space.spec(), d)
            else:
                config = PruneConfig(
                    criterion="l1",
                    allocation="uniform",
                    target_macs=f"{target:g}",
                    seed=0,
                    finetune_epochs=10,
                )
                pruned, pruning, _ = prune_network(
                    baseline,
                    space,
                    reseeded(data.train, 0),
                    data.val,
                    data.test,
                    config,
                    baseline_acc=0.0,
                    progress=False,
                )
                save_model(pruned, pruning.spec, d)
        dirs[name] = d
    return dirs


def _slug(name: str) -> str:
    return name.replace(" ", "").replace("%", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dataset", required=True, help="e.g. npz:../shared/data/cifar10-5k.npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--clusters", type=int, nargs="+", default=list(CLUSTERS))
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs of nas compress")
    parser.add_argument("--cache", default=str(ROOT / "runs/search_quality"))
    parser.add_argument("--work", default=str(ROOT / "runs/compression"))
    parser.add_argument("--out", default=str(ROOT / "experiments/results/compression"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only the report and the figure")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows = load_rows(results)
    if not args.report:
        dirs = prepare(args)
        done = {(r["network"], r["clusters"], r["seed"]) for r in rows}
        for seed in args.seeds:
            for name in args.networks:
                for k in args.clusters:
                    if (name, k, seed) in done:
                        continue
                    start = time.perf_counter()
                    run_dir = Path(args.work) / "runs" / f"{_slug(name)}-k{k}-s{seed}"
                    m = run_compress(
                        dirs[name],
                        DataOptions(dataset=args.dataset),
                        TrainConfig(epochs=args.epochs, lr=0.01, seed=seed),
                        Distillation(),
                        clusters=k,
                        temperature=0.5,
                        out_dir=run_dir,
                        compare=True,
                        overwrite=True,
                        progress=False,
                        threads=args.threads,
                    )
                    row = {"network": name, "clusters": k, "seed": seed, "epochs": args.epochs}
                    row |= {key: m[key] for key in _KEEP} | {
                        "seconds": round(time.perf_counter() - start, 1)
                    }
                    row |= provenance(args.threads)
                    rows.append(row)
                    append_row(results, row)
                    print(
                        f"{name} K={k} seed {seed}: {m['clustered_acc']:.2f} % at "
                        f"{m['bits_per_weight']:.2f} bits ({m['file_bytes'] / 1024:.0f} KB) vs "
                        f"{m['uncompressed_acc']:.2f} % unclustered ({m['model_bytes'] / 1024:.0f} "
                        "KB)",
                        flush=True,
                    )
    text = report(rows)
    (out / "report.md").write_text(text)
    if rows:
        figure(rows, out / "size.png", Path(str(args.dataset).split(":", 1)[-1]).stem)
    print(text)


_KEEP = (
    "clustered_acc",
    "uncompressed_acc",
    "source_acc",
    "soft_val_acc",
    "clustered_val_acc",
    "uncompressed_val_acc",
    "bits_per_weight",
    "index_bits",
    "file_bytes",
    "model_bytes",
    "macs_ratio",
)


def report(rows: list[dict[str, Any]]) -> str:
    out = [
        "| network | K (bits) | seeds | size KB (32-bit KB) | clustered % | unclustered % | "
        "clustered - unclustered (mean +- SE) | 95 % CI | per seed |",
        "| --- " * 9 + "|",
    ]
    for name in NETWORKS:
        for k in sorted({r["clusters"] for r in rows}):
            g = sorted((r for r in rows if (r["network"], r["clusters"]) == (name, k)), key=_seed)
            if not g:
                continue
            d = [r["clustered_acc"] - r["uncompressed_acc"] for r in g]
            mean, se, lo, hi = t_interval(d)
            out.append(
                f"| {name} | {k} ({statistics.fmean(r['bits_per_weight'] for r in g):.2f}) | "
                f"{len(g)} | {statistics.fmean(r['file_bytes'] for r in g) / 1024:.0f} "
                f"({statistics.fmean(r['model_bytes'] for r in g) / 1024:.0f}) | "
                f"{statistics.fmean(r['clustered_acc'] for r in g):.2f} | "
                f"{statistics.fmean(r['uncompressed_acc'] for r in g):.2f} | **{mean:+.2f}** "
                f"+- {se:.2f} | [{lo:+.2f}, {hi:+.2f}] | {', '.join(f'{x:+.2f}' for x in d)} |"
            )
    return "\n".join(out) + "\n"


def _seed(row: dict[str, Any]) -> int:
    return int(row["seed"])


def figure(rows: list[dict[str, Any]], path: Path, data: str) -> None:
    """Accuracy against file size: width pruning alone, clustering alone, both."""
    fig, ax = pyplot().subplots(figsize=(6.5, 4.5))

    def point(g: list[dict[str, Any]], size: str, acc: str) -> tuple[float, float, float]:
        mean, se = mean_se([r[acc] for r in g])
        return statistics.fmean(r[size] for r in g) / 1024, mean, se

    series: dict[str, list[tuple[float, float, float]]] = {
        "width pruning alone (32-bit)": [],
        "clustering alone (full width)": [],
        "width pruning + clustering": [],
    }
    for name in NETWORKS:
        g = [r for r in rows if r["network"] == name]
        if not g:
            continue
        series["width pruning alone (32-bit)"].append(point(g, "model_bytes", "uncompressed_acc"))
        for k in sorted({r["clusters"] for r in g}):
            gk = [r for r in g if r["clusters"] == k]
            key = (
                "clustering alone (full width)" if name == "full" else "width pruning + clustering"
            )
            series[key].append(point(gk, "file_bytes", "clustered_acc"))
    for i, (label, pts) in enumerate(series.items()):
        if pts:
            pts.sort()
            ax.errorbar(
                [p[0] for p in pts],
                [p[1] for p in pts],
                yerr=[p[2] for p in pts],
                fmt="o-" if i < 2 else "s",
                color=f"C{i}",
                label=label,
                capsize=3,
            )
    ax.set_xscale("log")
    ax.set_xlabel("saved network (KB, log scale)")
    ax.set_ylabel("test accuracy (%), mean +- SE over seeds")
    ax.set_title(f"{SPACE} on {data}: size against accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
