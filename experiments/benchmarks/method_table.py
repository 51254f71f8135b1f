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
  uniform twin comes from the supernet and is not used here);
* ``search:NAME`` for every gate strategy (``--methods search:channel-gumbel ...``): ``nas
  search --strategy NAME`` run here (5 warm-up epochs shared by the targets, 12 search epochs,
  ``--static`` for the per-input strategies), fine-tuned the same way; for a per-input strategy
  the table also gives its conditional network's average and p95 MAC ratios and accuracy, and
  ``methods_macs.png`` plots it at its average MACs with p95 as an error bar;
* ``search:NAME/conditional`` for a per-input strategy: what it delivers without ``--static``,
  its conditional network (gate threshold calibrated into the MAC band on validation images)
  fine-tuned the same way under its gates, at its average MACs over the test images (its MAC
  ratio column; p95 beside it); ``search:NAME/conditional-raw``: the same with the gates'
  trained thresholds (``--no-calibrate-gates``).

Seeds: the fine-tuning seed (batch order; for ``random`` also its scores). Every method is paired
with ``uniform`` at the same seed: the table gives the mean test accuracy, the paired difference
to ``uniform`` (mean and standard error over seeds) and the MAC ratio. Model choices use no test
data (greedy slims on the validation split); test accuracies are only reported.
Results are appended to ``--out/results.jsonl`` as they come (re-running resumes); the table goes
to ``--out/method_table.csv`` and the figures to ``--out/methods.png`` (paired differences) and
``--out/methods_macs.png`` (accuracy against MACs).

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
from nas.gates import STRATEGIES
from nas.pruning import PruneConfig, prune_network
from nas.width_search import SearchConfig, warm_up

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import run as search_run  # the search and what it delivers
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
# gate strategies searched here (search:NAME), as nas search --strategy NAME runs them
# search:NAME/conditional: a per-input strategy's conditional network itself (no --static),
# fine-tuned under its gates, at its average MACs; /conditional-raw: its gates' trained
# thresholds (no calibration into the band)
CONDITIONAL = ("conditional", "conditional-raw")
STRATEGY_METHODS = tuple(f"search:{s}" for s in STRATEGIES.names()) + tuple(
    f"search:{s}/{d}"
    for s in STRATEGIES.names()
    if getattr(STRATEGIES.get(s), "per_input", False)
    for d in CONDITIONAL
)
WARMUP_EPOCHS, SEARCH_EPOCHS = 5, 12  # as search_quality.py's runs


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


def strategy_row(
    method: str, space_name: str, target: float, seed: int, ctx: dict[str, Any], cache: Path
) -> dict[str, Any]:
    """``nas search --strategy NAME`` (``--static`` for a per-input one, unless the method is
    ``search:NAME/conditional(-raw)``) from the same baseline, fine-tuned the same way; its warm-up
    shared by both targets and both deliverables."""
    name, _, deliverable = method.split(":", 1)[1].partition("/")
    per_input = bool(getattr(STRATEGIES.get(name), "per_input", False))
    data = replace(ctx["data"], train=reseeded(ctx["data"].train, seed))
    assert data.val is not None
    base = SearchConfig(
        strategy=name,
        static=per_input and deliverable not in CONDITIONAL,
        calibrate_gates=deliverable != "conditional-raw",
        seed=seed,
        warmup_epochs=WARMUP_EPOCHS,
        search_epochs=SEARCH_EPOCHS,
        finetune_epochs=ctx["finetune_epochs"],
    )
    path = cache / f"warmup-{space_name}-{name}-{seed}.pt"
    warm_up(
        ctx["baseline"], ctx["space"], data.train, data.val, config=base, path=path, progress=False
    )
    config = replace(base, target_macs=f"{target:g}")
    start = time.perf_counter()
    m = search_run(ctx["space"], data, ctx["baseline"], ctx["baseline_acc"], config, path)
    row = search_row(m, space_name, target, method, seed, time.perf_counter() - start)
    keys = (
        "avg_macs_ratio",
        "p95_macs_ratio",
        "conditional_acc",
        "gate_offset",
        "calibrated_macs_ratio",
    )
    return row | {k: m[k] for k in keys if k in m}


def search_row(
    m: dict[str, Any], space: str, target: float, method: str, seed: int, seconds: float
) -> dict[str, Any]:
    """A table row of a searched network from its ``search_quality.run`` results."""
    return {
        "space": space,
        "target": target,
        "method": method,
        "seed": seed,
        "acc": m["searched_acc"],
        "val_acc": m["searched_val_acc"],
        "oneshot_val_acc": m["delivered_val_acc"],
        "macs_ratio": m["macs_ratio"],
        "scoring_seconds": m["search_s"],
        "allocation_seconds": 0.0,
        "seconds": round(seconds, 1),
        "widths": m["widths"],
    }


def search_rows(path: Path, config: str) -> list[dict[str, Any]]:
    """The searched networks of a ``search_quality.py`` results file (configuration ``config``)."""
    rows = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["config"] == config:
            seconds = r["search_s"] + r["finetune_s"] / 2
            rows.append(search_row(r, r["space"], r["target"], "search", r["seed"], seconds))
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
                    **_conditional(group),
                }
            )
    return out


def _conditional(group: list[dict[str, Any]]) -> dict[str, float]:
    """A per-input strategy's conditional network: mean of its average and p95 MAC ratios and
    of its accuracy (before the static pruning and fine-tuning)."""
    if not all("avg_macs_ratio" in r for r in group):
        return {}
    return {
        k: statistics.fmean(r[k] for r in group)
        for k in ("avg_macs_ratio", "p95_macs_ratio", "conditional_acc")
    }


def plot_macs(entries: list[dict[str, Any]], path: Path) -> None:
    """Test accuracy against MAC ratio, one panel per space: every method's network, and the
    conditional networks of per-input strategies at their average MACs (p95 as error bar)."""
    from nas.plots import pyplot, save_figure

    plt = pyplot()
    spaces = sorted({e["space"] for e in entries})
    fig, axes = plt.subplots(1, len(spaces), figsize=(5.5 * len(spaces), 4.2), squeeze=False)
    methods = list(dict.fromkeys(e["method"] for e in entries))
    markers = "osD^v<>pPX*hH8"
    for ax, space in zip(axes[0], spaces, strict=True):
        for i, method in enumerate(methods):
            here = [e for e in entries if (e["space"], e["method"]) == (space, method)]
            if not here:
                continue
            color, marker = f"C{i % 10}", markers[i % len(markers)]
            ax.scatter(
                [e["macs_ratio"] for e in here],
                [e["acc_mean"] for e in here],
                color=color,
                marker=marker,
                label=method,
            )
            for e in here:
                if "avg_macs_ratio" in e:
                    ax.errorbar(
                        e["avg_macs_ratio"],
                        e["conditional_acc"],
                        # p95 can sit a hair under the mean when almost every image opens
                        # the same gates and a few open more
                        xerr=[[0.0], [max(0.0, e["p95_macs_ratio"] - e["avg_macs_ratio"])]],
                        fmt=marker,
                        mfc="none",
                        color=color,
                        capsize=3,
                    )
        ax.set_title(space)
        ax.set_xlabel("MACs / full network (conditional: average, bar to p95)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    save_figure(fig, path)


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
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS), choices=[*METHODS, *STRATEGY_METHODS]
    )
    parser.add_argument(
        "--seeds-for",
        nargs="*",
        default=None,
        choices=[*METHODS, *STRATEGY_METHODS],
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
    parser.add_argument(
        "--report", action="store_true", help="no new runs: the table and figures of --out"
    )
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
    for space_name in [] if args.report else args.spaces:  # --report trains nothing
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
                    if args.report or (extra and seed != args.seeds[0]) or key in done:
                        continue
                    ctx = contexts[space_name]
                    row = (
                        strategy_row(method, space_name, target, seed, ctx, cache)
                        if method.startswith("search:")
                        else prune_row(method, space_name, target, seed, ctx)
                    )
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
    entries = table(rows, [m for m in [*METHODS, *STRATEGY_METHODS] if m in args.methods])
    with open(out / "method_table.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for e in entries for k in e)))
        writer.writeheader()
        writer.writerows(entries)
    plot(entries, out / "methods.png")
    plot_macs(entries, out / "methods_macs.png")
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
