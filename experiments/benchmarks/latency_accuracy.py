"""How well a latency table predicts whole networks: predicted against measured latency of random
width assignments, per space and batch size.

For every ``SPACE:BATCH`` configuration: the table is built here (``nas latency-table``'s
:func:`nas.cost.timing.build_table`, cached as ``--out/table-SPACE-bBATCH.json``), then
``--specs`` random width assignments (``--widths search``: every unit's width drawn from a
default search's width choices, the networks a search can return; ``any``: uniform in
[max/8, max], odd counts included; a seed the table's calibration did not use) are measured
whole (eager, eval mode, interleaved rounds, medians, ``--threads`` threads) and predicted
from the table. Reported per configuration: the mean and largest absolute relative error of
the table, and, to compare, of the MAC-proportional guess (full network's measured latency x
MAC ratio). Also the error of the latency *ratio* to the
full network (each network against the full one timed in the same interleaved rounds, the
table's prediction against its own full network): the number a ``--target-latency 0.5``
search relies on, and one that a machine whose speed drifts between the table's build and the
measurement (shared or throttled CPUs) leaves alone. Rows go to
``--out/latency_accuracy-WIDTHS.csv``, every network to
``--out/latency_specs-SPACE-bBATCH-WIDTHS.csv``.

    python experiments/benchmarks/latency_accuracy.py --threads 2 \\
        --configs resnet20:1 resnet20:16 resnet56:1 resnet56:16 resnet56_b:1 resnet56_b:16
    python experiments/benchmarks/latency_accuracy.py --threads 2 --widths any --configs ...
    python experiments/benchmarks/latency_accuracy.py --threads 2 --configs resnet50:1
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import search_spaces
from nas.cost import LatencyCost, LatencyTable
from nas.cost.timing import build_table, network_latency_ms, random_specs
from nas.width_search import SearchConfig
from nas.width_search.setup import width_choices

CHUNK = 10  # networks timed together (interleaved) with the full one


def _specs(space: search_spaces.SearchSpace, args: argparse.Namespace) -> list[dict[str, int]]:
    """``--widths any``: every unit's width uniform in [max/8, max]; ``search``: drawn from the
    width choices of a default ``nas search`` (what a search can return)."""
    if args.widths == "any":
        return random_specs(space, args.specs, seed=args.seed)
    choices = width_choices(SearchConfig(), space)
    rng = random.Random(args.seed)
    return [{u: rng.choice(c) for u, c in choices.items()} for _ in range(args.specs)]


def run_config(space_name: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    space = search_spaces.create(space_name)
    out = Path(args.out)
    path = out / f"table-{space_name}-b{batch}.json"
    start = time.perf_counter()
    if path.is_file() and LatencyTable.load(path).complete:
        table = LatencyTable.load(path)
        build_s = float("nan")
    else:
        table = build_table(space, path, batch=batch, resume=path.is_file(), progress=True)
        build_s = time.perf_counter() - start
    cost = LatencyCost(space, table=table)
    specs = _specs(space, args)
    shape = (space.in_channels, *space.input_size)
    measured: list[float] = []
    ratios: list[float] = []  # measured latency / the full network's in the same rounds
    full_runs: list[float] = []
    for i in range(0, len(specs), CHUNK):
        chunk = specs[i : i + CHUNK]
        times = network_latency_ms(
            [space.build(), *(space.build(w) for w in chunk)],
            shape,
            batch=batch,
            device="cpu",
            rounds=args.rounds,
            seed=i,
        )
        full_runs.append(times[0])
        measured += times[1:]
        ratios += [t / times[0] for t in times[1:]]
    full = statistics.median(full_runs)
    predicted = [cost.exact(w) for w in specs]
    full_predicted, full_macs = cost.full(), space.macs()
    macs_ratios = [space.macs(w) / full_macs for w in specs]
    by_macs = [full * q for q in macs_ratios]
    table_err = [abs(p / m - 1) for p, m in zip(predicted, measured, strict=True)]
    macs_err = [abs(p / m - 1) for p, m in zip(by_macs, measured, strict=True)]
    ratio_err = [abs(p / full_predicted / r - 1) for p, r in zip(predicted, ratios, strict=True)]
    macs_ratio_err = [abs(q / r - 1) for q, r in zip(macs_ratios, ratios, strict=True)]
    with open(
        out / f"latency_specs-{space_name}-b{batch}-{args.widths}.csv",
        "w",
        newline="",
        encoding="utf-8",
    ) as f:
        writer = csv.writer(f)
        writer.writerow(["predicted_ms", "measured_ms", "measured_ratio", "macs_ratio", "widths"])
        for p, m, r, q, w in zip(predicted, measured, ratios, macs_ratios, specs, strict=True):
            writer.writerow([p, m, r, q, " ".join(map(str, w.values()))])
    return {
        "space": space_name,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "specs": len(specs),
        "full_ms": full,
        "full_predicted_ms": full_predicted,
        "table_mae": statistics.fmean(table_err),
        "table_max_err": max(table_err),
        "macs_mae": statistics.fmean(macs_err),
        "macs_max_err": max(macs_err),
        "table_ratio_mae": statistics.fmean(ratio_err),
        "table_ratio_max_err": max(ratio_err),
        "macs_ratio_mae": statistics.fmean(macs_ratio_err),
        "full_spread": max(full_runs) / min(full_runs) - 1,
        "fixed_ms": table.fixed_ms,
        "scale": table.scale,
        "grid_points": sum(len(e.grid_in) * len(e.grid_out) for e in table.entries.values()),
        "build_s": build_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["resnet20:1", "resnet20:16"])
    parser.add_argument("--specs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--widths",
        choices=("search", "any"),
        default="search",
        help="random widths from a default search's choices, or any integer in [max/8, max]",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/latency")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rows = []
    for config in args.configs:
        name, _, batch = config.partition(":")
        row = run_config(name, int(batch or 1), args)
        rows.append(row)
        print(
            f"{name} batch {row['batch']}: table error mean {row['table_mae']:.1%} (max "
            f"{row['table_max_err']:.1%}); MAC-proportional mean {row['macs_mae']:.1%} (max "
            f"{row['macs_max_err']:.1%}); ratio to full: table {row['table_ratio_mae']:.1%}, "
            f"MACs {row['macs_ratio_mae']:.1%}; full {row['full_ms']:.2f} ms measured "
            f"(chunks spread {row['full_spread']:.0%}), "
            f"{row['full_predicted_ms']:.2f} predicted; {row['grid_points']} grid points, "
            f"built in {row['build_s']:.0f} s",
            file=sys.stderr,
        )
    csv_path = Path(args.out) / f"latency_accuracy-{args.widths}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(
        "| space | batch | threads | full ms (measured / predicted) | table error mean / max | "
        "MAC-proportional error mean / max | ratio-to-full error, table / MACs | grid points | "
        "build s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['space']} | {r['batch']} | {r['threads']} | {r['full_ms']:.2f} / "
            f"{r['full_predicted_ms']:.2f} | {r['table_mae']:.1%} / {r['table_max_err']:.1%} | "
            f"{r['macs_mae']:.1%} / {r['macs_max_err']:.1%} | {r['table_ratio_mae']:.1%} / "
            f"{r['macs_ratio_mae']:.1%} | {r['grid_points']} | "
            f"{r['build_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
