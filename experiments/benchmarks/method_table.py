"""Every method on one table: criteria pruning, greedy slimming, the width search, uniform width.

On real CIFAR-10 images (``cifar10-5k.npz``), for ``resnet20`` (option A) and ``resnet20_b``, at
50 % and 25 % of the MACs, from **one trained full network per space** (the baseline of
``search_quality.py``, cached as ``baseline-SPACE.pt``), every method delivers a network of the
target MACs (+-2 %) and fine-tunes it **the same way**: 10 epochs, lr 0.05, distillation from the
same full network (alpha 0.9, T 4), the same data splits (seed 0) and, per seed, the same batches.

Methods (``nas prune --criterion C --allocation A`` in process, :func:`nas.pruning.prune_network`):

* ``uniform``, printed as "uniform width cut from the baseline (first channels, no supernet
  training)": the same ratio for every unit, each unit's first channels of the baseline;
* ``C/uniform`` for C in l1, fpgm, bn, chip, hrel, random: the uniform widths, the criterion
  picks the channels;
* ``C/global``: channels ranked across units by normalised score per MAC;
* ``l1/greedy``: AutoSlim-style slimming on validation accuracy (BN recalibrated), l1 channels;
* ``search``: ``nas search --compare``'s searched network, read from a ``search_quality.py``
  results file run with the same baseline and fine-tuning (``--search-results``): its rows of
  protocol ``inherited`` and weight sampling / chooser ``--search-config`` (``SAMPLING/SELECT``);
* ``search:NAME`` for every gate strategy (``--methods search:channel-gumbel ...``): ``nas
  search --strategy NAME --compare`` run here (``--warmup-epochs`` 5 warm-up epochs shared by
  the targets, ``--search-epochs`` 12 search epochs, ``--static`` for the per-input strategies),
  fine-tuned the same way; for a per-input strategy the table also gives its conditional
  network's average and p95 MAC ratios and accuracy, and ``methods_macs.png`` plots it at its
  average MACs with p95 as an error bar;
* ``search:NAME/conditional`` for a per-input strategy: what it delivers without ``--static``,
  its conditional network (gate threshold calibrated into the MAC band on validation images)
  fine-tuned the same way under its gates, at its average MACs over the test images (its MAC
  ratio column; p95 beside it); ``search:NAME/conditional-raw``: the same with the gates'
  trained thresholds (``--no-calibrate-gates``).

**Fair comparison.** The pruning rows and ``uniform`` start from the baseline alone; a search row
also inherits 5 warm-up and 12 search epochs of supernet training. So every search row
(``search``, ``search:NAME``, ``search:NAME/conditional(-raw)``) is compared with **its own uniform
twin** (``--compare``, :func:`nas.width_search.deliver`): the uniform widths of the same MACs (for
a conditional network: of its average MACs on the validation split; the target's where none lies
in the band) cut from the same trained supernet (first channels, BN recalibrated for its widths)
and fine-tuned exactly like the searched network (same epochs, options, teacher, seed and
batches). Its numbers are stored in the row (``twin_acc``, ``twin_val_acc``, ``twin_macs_ratio``,
``twin_widths``, ``reference``: the twin in words). The pruning rows, cut from the same baseline
with no supernet training, are compared with ``uniform``, which is trained as much as they are.

The headline difference of a row is thus row - its twin (search rows) or row - ``uniform``
(pruning rows), paired per seed: mean, standard error, 95 % confidence interval (t
distribution) and every seed. Rows of an earlier release without a twin are kept (their twin
column stays empty; ``--rerun-untwinned`` runs them again, the new row replaces the old). The
difference of a search row to ``uniform`` (unequal training) is only in the CSV
(``vs_baseline_cut_*``). Model choices use no test data (greedy slims on the validation split;
the twin's MACs are measured on it); test accuracies are only reported.

Results are appended to ``--out/results.jsonl`` as they come (re-running resumes; the last row of
a space, target, method and seed counts); the table goes to ``--out/method_table.csv`` and
``--out/method_table.md`` (and is printed), the figures to ``--out/methods.png`` (paired
differences to each row's reference) and ``--out/methods_macs.png`` (accuracy against MACs, the
twins as crosses).

    python experiments/benchmarks/method_table.py --out runs/methods \\
        --baselines runs/search_quality \\
        --search-results experiments/results/search_quality/results.jsonl
    python experiments/benchmarks/method_table.py --dataset digits --out /tmp/methods \\
        --spaces resnet20 --targets 0.5 --seeds 0 --methods uniform search:channel-gumbel \\
        --baseline-epochs 1 --warmup-epochs 1 --search-epochs 1 --finetune-epochs 1   # smoke
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
from nas.width_search import SearchConfig, check_compare, warm_up

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import run as search_run  # the search and what it delivers
from search_quality import t_interval, train_baseline  # paired statistics, the same baseline

SPACES = ("resnet20", "resnet20_b")
TARGETS = (0.5, 0.25)
SEEDS = (0, 1, 2)
CRITERIA = ("l1", "fpgm", "bn", "chip", "hrel", "function", "random")
METHODS: dict[str, tuple[str, str]] = {
    "uniform": ("first", "uniform"),
    **{f"{c}/{a}": (c, a) for a in ("uniform", "global") for c in CRITERIA},
    "l1/greedy": ("l1", "greedy"),
}
# gate strategies searched here (search:NAME), as nas search --strategy NAME --compare runs them
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
KEY = ("space", "target", "method", "seed")
# what each row is compared with (the "difference to" column)
TWIN = "own uniform twin (same supernet, same fine-tuning)"
CUT = "uniform cut from the baseline"
UNIFORM_LABEL = "uniform width cut from the baseline (first channels, no supernet training)"
# the reference of search_quality.py's inherited protocol
SEARCH_REFERENCE = "uniform widths of the same MACs, cut from the same supernet"


def twinned(method: str) -> bool:
    """Whether ``method`` is a search, compared with its own uniform twin (not ``uniform``)."""
    return method == "search" or method.startswith("search:")


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
    """``nas search --strategy NAME --compare`` (``--static`` for a per-input one, unless the
    method is ``search:NAME/conditional(-raw)``) from the same baseline, fine-tuned the same way
    beside its uniform twin from the same supernet; its warm-up shared by both targets and both
    deliverables."""
    name, _, deliverable = method.split(":", 1)[1].partition("/")
    per_input = bool(getattr(STRATEGIES.get(name), "per_input", False))
    data = replace(ctx["data"], train=reseeded(ctx["data"].train, seed))
    assert data.val is not None
    base = SearchConfig(
        strategy=name,
        static=per_input and deliverable not in CONDITIONAL,
        calibrate_gates=deliverable != "conditional-raw",
        seed=seed,
        warmup_epochs=ctx["warmup_epochs"],
        search_epochs=ctx["search_epochs"],
        finetune_epochs=ctx["finetune_epochs"],
    )
    config = replace(base, target_macs=f"{target:g}", compare=True)
    check_compare(ctx["space"], config)  # no uniform twin in the band: refused before any work
    suffix = "" if base.warmup_epochs == WARMUP_EPOCHS else f"-w{base.warmup_epochs}"
    path = cache / f"warmup-{space_name}-{name}-{seed}{suffix}.pt"
    warm_up(
        ctx["baseline"], ctx["space"], data.train, data.val, config=base, path=path, progress=False
    )
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
    return row | {k: m[k] for k in keys if k in m} | {"finetune_s": m["finetune_s"]}


def search_row(
    m: dict[str, Any], space: str, target: float, method: str, seed: int, seconds: float
) -> dict[str, Any]:
    """A table row of a searched network and its uniform twin from its ``search_quality.run``
    results (with ``compare``)."""
    return {
        "space": space,
        "target": target,
        "method": method,
        "seed": seed,
        "acc": m["searched_acc"],
        "val_acc": m["searched_val_acc"],
        "oneshot_val_acc": m["delivered_val_acc"],
        "macs_ratio": m["macs_ratio"],
        "twin_acc": m["uniform_acc"],
        "twin_val_acc": m["uniform_val_acc"],
        "twin_macs_ratio": m["uniform_macs_ratio"],
        "twin_widths": m.get("uniform_widths"),
        "reference": m["reference"],
        "scoring_seconds": m["search_s"],
        "allocation_seconds": 0.0,
        "seconds": round(seconds, 1),
        "widths": m["widths"],
    }


def search_rows(path: Path, config: str) -> list[dict[str, Any]]:
    """The searched networks of a ``search_quality.py`` results file: its rows of protocol
    ``inherited`` and ``config`` (``SAMPLING/SELECT``), each with its own uniform twin (same
    supernet, same fine-tuning)."""
    rows, seen = [], set()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if "protocol" not in r:  # an earlier schema (no twin of the same protocol)
            continue
        seen.add(f"{r['sampling']}/{r['select']}")
        if r["protocol"] != "inherited" or f"{r['sampling']}/{r['select']}" != config:
            continue
        rows.append(
            {
                "space": r["space"],
                "target": r["target"],
                "method": "search",
                "seed": r["seed"],
                "acc": r["acc"],
                "val_acc": r["val_acc"],
                "oneshot_val_acc": r.get("oneshot_val_acc"),
                "macs_ratio": r["macs_ratio"],
                "twin_acc": r["uniform_acc"],
                "twin_val_acc": r["uniform_val_acc"],
                "twin_macs_ratio": r["uniform_macs_ratio"],
                "twin_widths": r.get("uniform_widths"),
                "reference": SEARCH_REFERENCE,
                "scoring_seconds": r["search_s"],
                "allocation_seconds": 0.0,
                "seconds": round(r["search_s"] + r.get("train_s", 0.0), 1),
                "widths": r["widths"],
            }
        )
    if not rows:
        print(
            f"{path}: no inherited rows of --search-config {config} "
            f"(there: {', '.join(sorted(seen)) or 'none of the current schema'})",
            flush=True,
        )
    return rows


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of ``results.jsonl``: the last one of each space, target, method and seed."""
    if not path.is_file():
        return []
    latest: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            latest.pop(tuple(r[k] for k in KEY), None)  # the newest goes last
            latest[tuple(r[k] for k in KEY)] = r
    return list(latest.values())


def _stats(pairs: list[tuple[int, float]]) -> dict[str, Any]:
    """Mean, SE, 95 % CI (t distribution) and the per-seed values of paired differences."""
    if not pairs:
        return {"mean": math.nan, "se": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    mean, se, lo, hi = t_interval([d for _, d in pairs])
    return {"mean": mean, "se": se, "lo": lo, "hi": hi, "n": len(pairs)}


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def table(rows: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    """Per space, target and method: mean accuracy and the paired difference to the row's
    reference (a search: its own uniform twin; the others: ``uniform``): mean, SE, 95 % CI,
    every seed."""
    out = []
    cells = sorted({(r["space"], r["target"]) for r in rows}, key=lambda c: (c[0], -c[1]))
    for space, target in cells:
        here = [r for r in rows if (r["space"], r["target"]) == (space, target)]
        cut = {r["seed"]: r for r in here if r["method"] == "uniform"}
        for method in ["search", *methods]:
            group = sorted((r for r in here if r["method"] == method), key=lambda r: r["seed"])
            if not group:
                continue
            accs = [r["acc"] for r in group]
            vs_cut = [
                (r["seed"], r["acc"] - cut[r["seed"]]["acc"]) for r in group if r["seed"] in cut
            ]
            if twinned(method):
                twins = [r for r in group if r.get("twin_acc") is not None]
                diffs = [(r["seed"], r["acc"] - r["twin_acc"]) for r in twins]
                val_diffs = [r["val_acc"] - r["twin_val_acc"] for r in twins]
                reference = "; ".join(dict.fromkeys(str(r.get("reference", "")) for r in twins))
            else:
                twins = []
                diffs = vs_cut
                val_diffs = [
                    r["val_acc"] - cut[r["seed"]]["val_acc"] for r in group if r["seed"] in cut
                ]
                reference = "" if method == "uniform" else UNIFORM_LABEL
            d, c = _stats(diffs), _stats(vs_cut)
            oneshot = [r["oneshot_val_acc"] for r in group if r["oneshot_val_acc"] is not None]
            out.append(
                {
                    "space": space,
                    "target": target,
                    "method": method,
                    "label": UNIFORM_LABEL if method == "uniform" else method,
                    "seeds": len(group),
                    "acc_mean": statistics.fmean(accs),
                    "acc_sd": statistics.stdev(accs) if len(accs) > 1 else math.nan,
                    "macs_ratio": statistics.fmean(r["macs_ratio"] for r in group),
                    "difference_to": TWIN if twinned(method) else CUT,
                    "reference": reference,
                    "diff_mean": d["mean"],
                    "diff_se": d["se"],
                    "diff_ci_low": d["lo"],
                    "diff_ci_high": d["hi"],
                    "paired": d["n"],
                    "diff_per_seed": _per_seed(group, dict(diffs), method),
                    "val_diff_mean": math.nan if method == "uniform" else _mean(val_diffs),
                    "twin_acc_mean": _mean([r["twin_acc"] for r in twins]),
                    "twin_val_acc_mean": _mean([r["twin_val_acc"] for r in twins]),
                    "twin_macs_ratio": _mean([r["twin_macs_ratio"] for r in twins]),
                    "vs_baseline_cut_mean": c["mean"],
                    "vs_baseline_cut_se": c["se"],
                    "vs_baseline_cut_paired": c["n"],
                    "oneshot_val_acc": _mean(oneshot),
                    "scoring_seconds": statistics.fmean(r["scoring_seconds"] for r in group),
                    **_conditional(group),
                }
            )
    return out


def _per_seed(group: list[dict[str, Any]], diffs: dict[int, float], method: str) -> str:
    """The paired differences seed by seed; a seed without its reference says so."""
    if method == "uniform":
        return ""
    missing = "no twin" if twinned(method) else "no uniform"
    return ", ".join(
        f"s{r['seed']} {diffs[r['seed']]:+.2f}" if r["seed"] in diffs else f"s{r['seed']} {missing}"
        for r in group
    )


def _conditional(group: list[dict[str, Any]]) -> dict[str, float]:
    """A per-input strategy's conditional network: mean of its average and p95 MAC ratios and
    of its accuracy (before the static pruning and fine-tuning)."""
    if not all("avg_macs_ratio" in r for r in group):
        return {}
    return {
        k: statistics.fmean(r[k] for r in group)
        for k in ("avg_macs_ratio", "p95_macs_ratio", "conditional_acc")
    }


def _num(x: float, fmt: str) -> str:
    """``x`` formatted, empty where it is NaN."""
    return "" if math.isnan(x) else format(x, fmt)


def markdown(entries: list[dict[str, Any]]) -> str:
    """The printed table: per row its paired difference to its reference and its twin."""
    lines = [
        "| space | target | method | seeds | test acc % | MACs | difference to | "
        "- reference, test (mean +- SE) | 95 % CI | per seed | - reference, val | "
        "twin test acc % (MACs) | one-shot val % | scoring s |",
        "| --- " * 14 + "|",
    ]
    for e in entries:
        if e["method"] == "uniform":
            diff, ci, to = "(reference of the pruning rows)", "", ""
        else:
            se = _num(e["diff_se"], ".2f")
            diff = _num(e["diff_mean"], "+.2f") + (f" +- {se}" if se else "")
            lo, hi = _num(e["diff_ci_low"], "+.2f"), _num(e["diff_ci_high"], "+.2f")
            ci = f"[{lo}, {hi}]" if lo else ""
            to = e["difference_to"] if e["paired"] else f"{e['difference_to']}: none run"
        twin = (
            f"{e['twin_acc_mean']:.2f} ({e['twin_macs_ratio']:.3f})"
            if not math.isnan(e["twin_acc_mean"])
            else ""
        )
        lines.append(
            f"| {e['space']} | {e['target']:g} | {e['label']} | {e['seeds']} | "
            f"{e['acc_mean']:.2f} | {e['macs_ratio']:.3f} | {to} | {diff} | {ci} | "
            f"{e['diff_per_seed']} | {_num(e['val_diff_mean'], '+.2f')} | {twin} | "
            f"{_num(e['oneshot_val_acc'], '.1f')} | {e['scoring_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot_macs(entries: list[dict[str, Any]], path: Path) -> None:
    """Test accuracy against MAC ratio, one panel per space: every method's network, its uniform
    twin (a cross of the same colour) for a search, and the conditional networks of per-input
    strategies at their average MACs (p95 as error bar)."""
    from nas.plots import pyplot, save_figure

    plt = pyplot()
    spaces = sorted({e["space"] for e in entries})
    fig, axes = plt.subplots(1, len(spaces), figsize=(5.5 * len(spaces), 4.2), squeeze=False)
    methods = list(dict.fromkeys(e["method"] for e in entries))
    markers = "osD^v<>pPX*hH8"
    for ax, space in zip(axes[0], spaces, strict=True):
        any_twin = False
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
                label="uniform cut from the baseline" if method == "uniform" else method,
            )
            twins = [e for e in here if not math.isnan(e["twin_acc_mean"])]
            if twins:
                ax.scatter(
                    [e["twin_macs_ratio"] for e in twins],
                    [e["twin_acc_mean"] for e in twins],
                    color=color,
                    marker="x",
                )
                any_twin = True
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
        if any_twin:  # one legend entry for the twins, drawn in their search's colour
            ax.scatter([], [], color="black", marker="x", label="a search's uniform twin")
        ax.set_title(space)
        ax.set_xlabel("MACs / full network (conditional: average, bar to p95)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    save_figure(fig, path)


def plot(entries: list[dict[str, Any]], path: Path) -> None:
    """One panel per space and target: each method's paired difference to its reference (a
    search: its own uniform twin; a pruning method: uniform width cut from the baseline)."""
    from matplotlib.lines import Line2D

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
            if not hit or math.isnan(hit[0]["diff_mean"]):  # no twin run (an earlier row)
                continue
            e = hit[0]
            err = 0.0 if math.isnan(e["diff_se"]) else e["diff_se"]
            color = "tab:red" if twinned(method) else "tab:blue"
            ax.errorbar(e["diff_mean"], y, xerr=err, fmt="o", color=color, capsize=3)
        ax.axvline(0, color="grey", lw=1)
        ax.set_title(f"{space} @ {target:g} MACs", fontsize=9)
        ax.set_xlabel("test acc. - reference (points)")
        ax.set_yticks(range(len(methods)), labels=methods)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    handles = [
        Line2D([], [], color="tab:red", marker="o", ls="", label=f"search - {TWIN}"),
        Line2D([], [], color="tab:blue", marker="o", ls="", label=f"pruning - {UNIFORM_LABEL}"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("every method against a reference trained as much as it (mean +- SE over seeds)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--dataset",
        required=True,
        help="the data, e.g. npz:PATH/cifar10-5k.npz (experiments/make_cifar_subset.py builds it)",
    )
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
    parser.add_argument(
        "--warmup-epochs",
        type=int,
        default=WARMUP_EPOCHS,
        help="search:NAME rows: supernet warm-up epochs (shared by the targets)",
    )
    parser.add_argument(
        "--search-epochs", type=int, default=SEARCH_EPOCHS, help="search:NAME rows: search epochs"
    )
    parser.add_argument("--baselines", default=None, help="where baseline-SPACE.pt are cached")
    parser.add_argument("--search-results", default=None, help="search_quality results.jsonl")
    parser.add_argument(
        "--search-config",
        default="sandwich/argmax",
        help="the --search-results rows taken: weight sampling / chooser (protocol inherited)",
    )
    parser.add_argument(
        "--rerun-untwinned",
        action="store_true",
        help="run again the search:NAME rows of --out that have no uniform twin (an earlier "
        "release's); the new row replaces the old",
    )
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
    rows = load_rows(results)
    done = {
        tuple(r[k] for k in KEY)
        for r in rows
        if not (args.rerun_untwinned and twinned(r["method"]) and r.get("twin_acc") is None)
    }
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
            "warmup_epochs": args.warmup_epochs,
            "search_epochs": args.search_epochs,
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
                    rows = [r for r in rows if tuple(r[k] for k in KEY) != key] + [row]
                    with results.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    twin = (
                        f" vs its twin {row['twin_acc']:.2f} % at {row['twin_macs_ratio']:.3f}"
                        if "twin_acc" in row
                        else ""
                    )
                    print(
                        f"{space_name} @ {target:g} {method} seed {seed}: {row['acc']:.2f} % at "
                        f"{row['macs_ratio']:.3f}{twin} (scoring {row['scoring_seconds']:.1f} s, "
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
    text = markdown(entries)
    (out / "method_table.md").write_text(text, encoding="utf-8")
    if entries:
        plot(entries, out / "methods.png")
        plot_macs(entries, out / "methods_macs.png")
    print()
    print(text)
    print(f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
