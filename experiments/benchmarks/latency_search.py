"""A MAC budget against a latency budget: is the latency-targeted network at least as accurate at
the same measured latency, and as fast as its MACs promise?

On real CIFAR-10 images (``cifar10-5k.npz``), ``--space`` (default ``resnet56``, option A) at
batch ``--batch`` on this CPU (``--threads``): one latency table built here (or ``--table``), one
trained full network (cached as ``--out/baseline-SPACE.pt``), and per seed:

1. ``nas search --target-macs 0.5`` (MAC budget), its network's latency measured here;
2. ``nas search --cost latency --target-latency R`` at that network's measured latency ratio
   ``R`` (its latency / the full network's, both measured here);

both from the same baseline and warm-up, fine-tuned the same way (epochs, distillation,
batches), each beside its ``--compare`` twin: the uniform-width network of the same MACs, and of
the same predicted latency (where the latency staircase of uniform widths leaves one within
the band; a unit one channel past a kernel block costs the whole next block). Reported per
seed and as mean +- SE of the paired differences: test accuracy, measured latency, the
table's prediction, the MAC ratio, and the latency/MAC ratio (measured latency ratio over MAC
ratio: 1 = as fast as the MACs promise). Rows are appended to ``--out/results.jsonl``
(re-running resumes).

    python experiments/benchmarks/latency_search.py --threads 2 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
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
import search_spaces
from nas.cost import LatencyCost, LatencyTable
from nas.cost.timing import build_table, latency_report
from nas.data import load_data, reseeded
from nas.width_search import SearchConfig, check_compare, search_budget, warm_up
from search_spaces.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import run as search_run  # the search and what it delivers
from search_quality import train_baseline  # the same cached baseline


def measure(cost: LatencyCost, widths: dict[str, int]) -> dict[str, float]:
    r = latency_report(cost, widths, rounds=21)
    space = cost.space
    macs_ratio = space.macs(widths) / space.macs()
    return r | {"macs_ratio": macs_ratio, "latency_per_mac": r["latency_ratio"] / macs_ratio}


def one_seed(seed: int, ctx: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    space, cost = ctx["space"], ctx["cost"]
    data = replace(ctx["data"], train=reseeded(ctx["data"].train, seed))
    assert data.val is not None
    base = SearchConfig(
        seed=seed,
        warmup_epochs=args.warmup_epochs,
        search_epochs=args.search_epochs,
        finetune_epochs=args.finetune_epochs,
        target_macs=f"{args.target_macs:g}",
        compare=True,
    )
    path = Path(args.out) / f"warmup-{seed}.pt"
    warm_up(ctx["baseline"], space, data.train, data.val, config=base, path=path, progress=False)
    row: dict[str, Any] = {"seed": seed}
    start = time.perf_counter()
    m = search_run(space, data, ctx["baseline"], ctx["baseline_acc"], base, path)
    row["macs"] = {"acc": m["searched_acc"], **measure(cost, m["widths"])}
    row["macs_uniform"] = {"acc": m["uniform_acc"], **measure(cost, m["uniform_widths"])}
    # the latency that network measured, as a share of the full network's measured latency
    # (the table's scale: its prediction of the full network may differ from this run's timing)
    target = row["macs"]["latency_ratio"]
    latency = replace(
        base, cost="latency", latency_table=str(ctx["table_path"]), target_latency=f"{target:.6g}"
    )
    # the latency staircase of uniform widths (a unit one channel past a kernel block costs a
    # block more) can leave no uniform network within the band: then no uniform twin for it
    try:
        check_compare(search_budget(latency, space, cost=cost), latency)
    except ConfigError as e:
        print(f"seed {seed}: no uniform twin of the latency search ({e})", file=sys.stderr)
        latency = replace(latency, compare=False)
    m = search_run(space, data, ctx["baseline"], ctx["baseline_acc"], latency, path)
    row["latency"] = {
        "acc": m["searched_acc"],
        "target_ratio": target,
        **measure(cost, m["widths"]),
    }
    if latency.compare:
        row["latency_uniform"] = {"acc": m["uniform_acc"], **measure(cost, m["uniform_widths"])}
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


KINDS = {
    "macs": "MAC budget",
    "macs_uniform": "uniform, same MACs",
    "latency": "latency budget",
    "latency_uniform": "uniform, same predicted latency",
}


def paired(rows: list[dict[str, Any]], a: str, b: str, key: str) -> str:
    """``a - b`` of ``key`` over the seeds: mean +- standard error (and per seed)."""
    diffs = [r[a][key] - r[b][key] for r in rows if a in r and b in r]
    if not diffs:
        return "n/a"
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    each = ", ".join(f"{d:+.2f}" for d in diffs)
    return f"{statistics.fmean(diffs):+.2f} +- {se:.2f} ({each}; {len(diffs)} seeds)"


def report(rows: list[dict[str, Any]]) -> None:
    print(
        "| seed | network | test acc % | measured ms | predicted ms | latency ratio | MAC ratio "
        "| latency/MAC |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        for kind, label in KINDS.items():
            if kind not in r:
                continue
            e = r[kind]
            print(
                f"| {r['seed']} | {label} | {e['acc']:.2f} | {e['latency_ms']:.2f} | "
                f"{e['predicted_latency_ms']:.2f} | {e['latency_ratio']:.3f} | "
                f"{e['macs_ratio']:.3f} | {e['latency_per_mac']:.2f} |"
            )
    for a, b in (("latency", "macs"), ("macs", "macs_uniform"), ("latency", "latency_uniform")):
        for key, unit in (("acc", "test acc, points"), ("latency_ratio", "measured latency ratio")):
            print(f"{KINDS[a]} - {KINDS[b]}, {unit}: {paired(rows, a, b, key)}")
    errors = [r["latency"]["latency_ratio"] / r["latency"]["target_ratio"] - 1 for r in rows]
    print(
        "latency budget, measured latency ratio / target - 1: "
        + ", ".join(f"{e:+.1%}" for e in errors)
        + " (target: within +-7 %)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dataset",
        required=True,
        help="the data, e.g. npz:PATH/cifar10-5k.npz (experiments/make_cifar_subset.py builds it)",
    )
    parser.add_argument("--space", default="resnet56")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target-macs", type=float, default=0.5)
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--search-epochs", type=int, default=12)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--table", default=None, help="a latency table (else built in --out)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/latency_search")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_data(args.dataset, seed=0)
    space = search_spaces.create(
        args.space,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    table_path = Path(args.table) if args.table else out / f"table-{args.space}-b{args.batch}.json"
    if not (table_path.is_file() and LatencyTable.load(table_path).complete):
        build_table(space, table_path, batch=args.batch, resume=table_path.is_file())
    cost = LatencyCost(space, table=LatencyTable.load(table_path))
    baseline = train_baseline(space, data, args.baseline_epochs, out / f"baseline-{args.space}.pt")
    ctx = {
        "space": space,
        "data": data,
        "cost": cost,
        "table_path": table_path,
        "baseline": baseline,
        "baseline_acc": nas.evaluate(baseline, data.test).accuracy,
    }
    results = out / "results.jsonl"
    done = (
        [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    )
    for seed in args.seeds:
        if any(r["seed"] == seed for r in done):
            continue
        row = one_seed(seed, ctx, args)
        with open(results, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        done.append(row)
        print(f"seed {seed} done in {row['seconds']:.0f} s", file=sys.stderr)
    report(sorted((r for r in done if r["seed"] in args.seeds), key=lambda r: r["seed"]))


if __name__ == "__main__":
    main()
