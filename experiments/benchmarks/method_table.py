"""Every method on one table: criteria pruning, greedy slimming, the width search, uniform width.

On real CIFAR-10 images (``cifar10-5k.npz``), for ``resnet20`` (option A) and ``resnet20_b``, at
50 % and 25 % of the MACs, from **one trained full network per space** (the baseline of
``search_quality.py``, cached as ``baseline-SPACE.pt``), every method delivers a network of the
target MACs (+-2 %) and fine-tunes it **the same way**: 10 epochs, lr 0.05, distillation from the
same full network (alpha 0.9, T 4), the same data splits (seed 0) and, per seed, the same batches.

Methods (``nas prune --criterion C --allocation A`` in process, :func:`nas.pruning.prune_network`):

* ``uniform``: the same ratio for every unit, the first channels (the reference);
* ``C/uniform`` for C in l1, fpgm, bn, chip, hrel, random: the uniform widths, the criterion
  picks the channels;
* ``C/global``: channels ranked across units by normalised score per MAC;
* ``l1/greedy``: AutoSlim-style slimming on validation accuracy (BN recalibrated), l1 channels;
* ``search``: ``nas search --compare``'s searched network (taken from a ``search_quality.py``
  results file run with the same baseline and fine-tuning: ``--search-results``; its own
  uniform twin comes from the supernet and is not used here).

Seeds: the fine-tuning seed (batch order; for ``random`` also its scores). Every method is paired
with ``uniform`` at the same seed: the table gives the mean test accuracy, the paired difference
to ``uniform`` (mean and standard error over seeds) and the MAC ratio. Model choices use no test
data (greedy slims on the validation split); test accuracies are only reported.
Results are appended to ``--out/results.jsonl`` as they come (re-running resumes); the table goes
to ``--out/method_table.csv`` and the figure to ``--out/methods.png``.

    python experiments/benchmarks/method_table.py --out runs/methods \
        --baselines runs/search_quality --search-results runs/search_quality/results.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import nas
from nas.data import load_data, reseeded
from nas.pruning import PruneConfig, prune_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import train_baseline  # the same cached baseline

SPACES = ("resnet20", "resnet20_b")
TARGETS = (0.5, 0.25)
SEEDS = (0, 1, 2)
CRITERIA = ("l1", "fpgm", "bn", "chip", "hrel", "random")
METHODS: dict[str, tuple[str, str]] = {
    "uniform": ("first", "uniform"),
    **{f"{c}/{a}": (c, a) for a in ("uniform", "global") for c in CRITERIA},
    "l1/greedy": ("l1", "greedy"),
}


def prune_row(
    method: str, space_name: str, target: float, seed: int, ctx: dict[str, Any]
) -> dict[str, Any]:
    criterion, allocation = METHODS[method]
    data = replace(ctx["data"], train=reseeded(ctx["data"].train, seed))
    config = PruneConfig(
        criterion=criterion,
        allocation=allocation,
        target_macs=f"{target:g}",
        seed=seed,
        finetune_epochs=ctx["finetune_epochs"],
    )
    start = time.perf_counter()
    _, _, m = prune_network(
        ctx["baseline"],
        ctx["space"],
        data.train,
        data.val,
        data.test,
        config,
        baseline_acc=ctx["baseline_acc"],
        progress=False,
    )
    return {
        "space": space_name,
        "target": target,
        "method": method,
        "seed": seed,
        "acc": m["pruned_acc"],
        "val_acc": m["pruned_val_acc"],
        "oneshot_val_acc": m["oneshot_val_acc"],
        "macs_ratio": m["macs_ratio"],
        "scoring_seconds": m["scoring_seconds"],
        "allocation_seconds": m["allocation_seconds"],
        "seconds": round(time.perf_counter() - start, 1),
        "widths": m["widths"],
    }


def search_rows(path: Path, config: str) -> list[dict[str, Any]]:
    """The searched networks of a ``search_quality.py`` results file (configuration ``config``)."""
    rows = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["config"] != config:
            continue
        rows.append(
            {
                "space": r["space"],
                "target": r["target"],
                "method": "search",
                "seed": r["seed"],
                "acc": r["searched_acc"],
                "val_acc": r["searched_val_acc"],
                "oneshot_val_acc": r["delivered_val_acc"],
                "macs_ratio": r["macs_ratio"],
                "scoring_seconds": r["search_s"],
                "allocation_seconds": 0.0,
                "seconds": r["search_s"] + r["finetune_s"] / 2,
                "widths": r["widths"],
            }
        )
    return rows


def table(rows: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """Per space, target and method: mean accuracy, paired difference to uniform (mean, SE)."""
    out = []
    cells = sorted({(r["space"], r["target"]) for r in rows}, key=lambda c: (c[0], -c[1]))
    for space, target in cells:
        here = [r for r in rows if (r["space"], r["target"]) == (space, target)]
        ref = {r["seed"]: r["acc"] for r in here if r["method"] == "uniform"}
        for method in ["search", *methods]:
            group = sorted((r for r in here if r["method"] == method), key=lambda r: r["seed"])
            if not group:
                continue
            accs = [r["acc"] for r in group]
            diffs = [r["acc"] - ref[r["seed"]] for r in group if r["seed"] in ref]
            sd = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
            out.append(
                {
                    "space": space,
                    "target": target,
                    "method": method,
                    "seeds": len(group),
                    "acc_mean": statistics.fmean(accs),
                    "acc_sd": statistics.stdev(accs) if len(accs) > 1 else math.nan,
                    "diff_mean": statistics.fmean(diffs) if diffs else math.nan,
                    "diff_se": sd / math.sqrt(len(diffs)) if diffs else math.nan,
                    "paired": len(diffs),
                    "macs_ratio": statistics.fmean(r["macs_ratio"] for r in group),
                    "oneshot_val_acc": statistics.fmean(
                        r["oneshot_val_acc"] for r in group if r["oneshot_val_acc"] is not None
                    )
                    if any(r["oneshot_val_acc"] is not None for r in group)
                    else math.nan,
                    "scoring_seconds": statistics.fmean(r["scoring_seconds"] for r in group),
                }
            )
    return out


def plot(entries: list[dict[str, Any]], path: Path) -> None:
    """One panel per space and target: each method's paired difference to uniform width."""
    from nas.plots import pyplot, save_figure

    plt = pyplot()
    cells = sorted({(e["space"], e["target"]) for e in entries}, key=lambda c: (c[0], -c[1]))
    fig, axes = plt.subplots(
        1, len(cells), figsize=(3.6 * len(cells), 5.2), squeeze=False, sharey=True
    )
    methods = list(dict.fromkeys(e["method"] for e in entries if e["method"] != "uniform"))
    for ax, (space, target) in zip(axes[0], cells, strict=True):
        for y, method in enumerate(methods):
            hit = [
                e
                for e in entries
                if (e["space"], e["target"], e["method"]) == (space, target, method)
            ]
            if not hit:
                continue
            e = hit[0]
            err = 0.0 if math.isnan(e["diff_se"]) else e["diff_se"]
            color = "tab:red" if method == "search" else "tab:blue"
            ax.errorbar(e["diff_mean"], y, xerr=err, fmt="o", color=color, capsize=3)
        ax.axvline(0, color="grey", lw=1)
        ax.set_title(f"{space} @ {target:g} MACs", fontsize=9)
        ax.set_xlabel("test acc. - uniform width (points)")
        ax.set_yticks(range(len(methods)), labels=methods)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("every method against uniform width, same fine-tuning (mean +- SE over seeds)")
    fig.tight_layout()
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="npz:../shared/data/cifar10-5k.npz")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES))
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--seeds-for",
        nargs="*",
        default=None,
        choices=METHODS,
        help="methods run at every --seeds seed; the others at the first seed only "
        "(default: every method at every seed)",
    )
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--baselines", default=None, help="where baseline-SPACE.pt are cached")
    parser.add_argument("--search-results", default=None, help="search_quality results.jsonl")
    parser.add_argument("--search-config", default="default")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/methods")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows = [json.loads(x) for x in results.read_text().splitlines()] if results.is_file() else []
    done = {(r["space"], r["target"], r["method"], r["seed"]) for r in rows}
    data = load_data(args.dataset, seed=0)
    cache = Path(args.baselines) if args.baselines else out
    started = time.perf_counter()
    contexts = {}
    for space_name in args.spaces:
        space = nas.create_space(
            space_name,
            num_classes=data.num_classes,
            in_channels=data.in_channels,
            input_size=data.input_size,
        )
        path = cache / f"baseline-{space_name}.pt"
        baseline = train_baseline(space, data, args.baseline_epochs, path)
        contexts[space_name] = {
            "data": data,
            "space": space,
            "baseline": baseline,
            "baseline_acc": nas.evaluate(baseline, data.test).accuracy,
            "finetune_epochs": args.finetune_epochs,
        }
        print(f"{space_name}: baseline {contexts[space_name]['baseline_acc']:.2f} %", flush=True)
    for seed in args.seeds:  # seed-major: every cell gets its first seed first
        for space_name in args.spaces:
            for target in args.targets:
                for method in args.methods:
                    extra = args.seeds_for is not None and method not in args.seeds_for
                    key = (space_name, target, method, seed)
                    if (extra and seed != args.seeds[0]) or key in done:
                        continue
                    row = prune_row(method, space_name, target, seed, contexts[space_name])
                    rows.append(row)
                    with results.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(
                        f"{space_name} @ {target:g} {method} seed {seed}: {row['acc']:.2f} % at "
                        f"{row['macs_ratio']:.3f} (scoring {row['scoring_seconds']:.1f} s, "
                        f"{row['seconds']:.0f} s; {time.perf_counter() - started:.0f} s in all)",
                        flush=True,
                    )
    if args.search_results:
        rows += [
            r
            for r in search_rows(Path(args.search_results), args.search_config)
            if r["space"] in args.spaces and r["target"] in args.targets
        ]
    rows = [r for r in rows if r["space"] in args.spaces and r["target"] in args.targets]
    entries = table(rows, [m for m in METHODS if m in args.methods])
    with open(out / "method_table.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(entries[0]))
        writer.writeheader()
        writer.writerows(entries)
    plot(entries, out / "methods.png")
    print()
    print(
        "| space | target | method | seeds | test acc % | - uniform (mean +- SE) | MACs | "
        "one-shot val % | scoring s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for e in entries:
        se = "" if math.isnan(e["diff_se"]) else f" +- {e['diff_se']:.2f}"
        print(
            f"| {e['space']} | {e['target']:g} | {e['method']} | {e['seeds']} | "
            f"{e['acc_mean']:.2f} | {e['diff_mean']:+.2f}{se} | {e['macs_ratio']:.3f} | "
            f"{e['oneshot_val_acc']:.1f} | {e['scoring_seconds']:.1f} |"
        )
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
