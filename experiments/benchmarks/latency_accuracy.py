"""How well a latency table predicts whole networks: predicted against measured latency of random
width assignments, per space and batch size.

For every ``SPACE:BATCH`` configuration: the table is built here (``nas latency-table``'s
:func:`nas.cost.timing.build_table`, cached as ``--out/table-SPACE-bBATCH.json``), then
``--specs`` random width assignments (every unit uniform in [max/8, max], a seed the table's
calibration did not use) are measured whole (eager, eval mode, interleaved rounds, medians,
``--threads`` threads) and predicted from the table. Reported per configuration: the mean and
largest absolute relative error of the table, and, to compare, of the MAC-proportional guess
(full network's measured latency x MAC ratio). Rows go to ``--out/latency_accuracy.csv``.

    python experiments/benchmarks/latency_accuracy.py --threads 2 \\
        --configs resnet20:1 resnet20:16 resnet56:1 resnet56:16 resnet56_b:1 resnet56_b:16
    python experiments/benchmarks/latency_accuracy.py --threads 2 --configs resnet50:1
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

import search_spaces
from nas.cost import LatencyCost, LatencyTable
from nas.cost.timing import build_table, network_latency_ms, random_specs

CHUNK = 10  # networks timed together (interleaved) with the full one


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
    specs = random_specs(space, args.specs, seed=args.seed)
    shape = (space.in_channels, *space.input_size)
    measured: list[float] = []
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
    full = statistics.median(full_runs)
    predicted = [cost.exact(w) for w in specs]
    by_macs = [full * space.macs(w) / space.macs() for w in specs]
    table_err = [abs(p / m - 1) for p, m in zip(predicted, measured, strict=True)]
    macs_err = [abs(p / m - 1) for p, m in zip(by_macs, measured, strict=True)]
    return {
        "space": space_name,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "specs": len(specs),
        "full_ms": full,
        "full_predicted_ms": cost.full(),
        "table_mae": statistics.fmean(table_err),
        "table_max_err": max(table_err),
        "macs_mae": statistics.fmean(macs_err),
        "macs_max_err": max(macs_err),
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
            f"{row['macs_max_err']:.1%}); full {row['full_ms']:.2f} ms measured, "
            f"{row['full_predicted_ms']:.2f} predicted; {row['grid_points']} grid points, "
            f"built in {row['build_s']:.0f} s",
            file=sys.stderr,
        )
    with open(Path(args.out) / "latency_accuracy.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(
        "| space | batch | threads | full ms (measured / predicted) | table error mean / max | "
        "MAC-proportional error mean / max | grid points | build s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['space']} | {r['batch']} | {r['threads']} | {r['full_ms']:.2f} / "
            f"{r['full_predicted_ms']:.2f} | {r['table_mae']:.1%} / {r['table_max_err']:.1%} | "
            f"{r['macs_mae']:.1%} / {r['macs_max_err']:.1%} | {r['grid_points']} | "
            f"{r['build_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
