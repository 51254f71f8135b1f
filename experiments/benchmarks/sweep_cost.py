"""What a sweep saves: N budgets as one ``nas sweep`` against N independent ``nas search`` runs.

Both sides run the same searches as separate command-line processes, one after the other in
this script: N independent ``nas search --target-macs B`` runs (each trains its own baseline and
warms its own supernet up), then one ``nas sweep --budgets B1,...,BN --trials N --tune ""``
(one shared baseline and warm-up; the first N trials take the N budgets in order; nothing else
tuned, so each trial is the search of one independent run; the uniform-width curve is switched
off, since the independent runs do not make one either). Printed: the wall time of each side,
their ratio (target: sweep / independent <= 0.6), and whether every trial found exactly the
network of the independent run at its budget (same ``arch.json`` and test accuracy).

    python experiments/benchmarks/sweep_cost.py            # defaults of nas search (~12 min)
    python experiments/benchmarks/sweep_cost.py --quick    # fewer epochs (~3 min)
    python experiments/benchmarks/sweep_cost.py --baseline-epochs 100   # a longer baseline
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGETS = ("0.2", "0.35", "0.5", "0.65", "0.8")
TARGET = 0.6
QUICK = [
    "--baseline-epochs",
    "10",
    "--warmup-epochs",
    "2",
    "--search-epochs",
    "5",
    "--finetune-epochs",
    "5",
]


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs on both sides")
    parser.add_argument("--space", default="resnet20")
    parser.add_argument(
        "--baseline-epochs", type=int, default=None, help="both sides (default: nas search's)"
    )
    args = parser.parse_args()
    extra = (QUICK if args.quick else []) + ["--space", args.space, "--quiet"]
    if args.baseline_epochs is not None:
        extra += ["--baseline-epochs", str(args.baseline_epochs)]
    nas = [sys.executable, "-m", "nas.cli"]
    work = Path(tempfile.mkdtemp(prefix="sweep-cost-"))
    try:
        independent = []
        for i, budget in enumerate(BUDGETS):
            seconds = run(
                [
                    *nas,
                    "search",
                    "--target-macs",
                    budget,
                    "--out",
                    str(work / f"search-{i}"),
                    *extra,
                ]
            )
            independent.append(seconds)
            print(f"nas search --target-macs {budget}: {seconds:7.1f} s", flush=True)
        sweep = run(
            [
                *nas,
                "sweep",
                "--budgets",
                ",".join(BUDGETS),
                "--trials",
                str(len(BUDGETS)),
                "--no-uniform",
                "--tune",
                "",
                "--out",
                str(work / "sweep"),
                *extra,
            ]
        )
        total = sum(independent)
        ratio = sweep / total
        print(f"{len(BUDGETS)} independent nas search runs: {total:7.1f} s")
        print(f"one nas sweep of {len(BUDGETS)} trials:        {sweep:7.1f} s")
        status = "met" if ratio <= TARGET else "MISSED"
        print(f"ratio sweep / independent: {ratio:.2f} (target <= {TARGET}): {status}")
        same = _same_networks(work, len(BUDGETS))
        print(f"every trial found the network of the independent run: {'yes' if same else 'NO'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _same_networks(work: Path, n: int) -> bool:
    """Trial i of the sweep and independent run i: same widths and test accuracy."""
    with open(work / "sweep" / "trials.csv", encoding="utf-8", newline="") as f:
        rows = {int(r["number"]): r for r in csv.DictReader(f)}
    for i in range(n):
        run = work / "sweep" / rows[i]["run_dir"]
        alone = work / f"search-{i}"
        acc = json.loads((alone / "metrics.json").read_text())["searched_acc"]
        arch_same = (run / "arch.json").read_text() == (alone / "arch.json").read_text()
        if not arch_same or float(rows[i]["searched_acc"]) != acc:
            return False
    return True


if __name__ == "__main__":
    main()
