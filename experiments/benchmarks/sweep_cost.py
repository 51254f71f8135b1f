"""What a sweep saves: N budgets as one ``nas sweep`` against N independent ``nas search`` runs.

Both sides run the same search at the same settings as separate command-line processes, one
after the other in this script: N independent ``nas search`` runs (each trains its own
baseline), then one ``nas sweep`` of N trials (one shared baseline; the uniform-width curve is
switched off, since the independent runs do not make one either). Printed: the wall time of
each side and their ratio. Target: sweep / independent <= 0.6.

    python experiments/benchmarks/sweep_cost.py            # defaults of nas search (~12 min)
    python experiments/benchmarks/sweep_cost.py --quick    # fewer epochs (~3 min)
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    extra = (QUICK if args.quick else []) + ["--space", args.space, "--quiet"]
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
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
