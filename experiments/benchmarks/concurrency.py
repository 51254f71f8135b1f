"""Two jobs on one machine: do their threads fight over the cores?

Measured side by side in one run, each job a fresh ``nas`` process in its own directory:

1. **Two main jobs at once.** The README's main job (``nas search``: baseline, search,
   extraction, fine-tuning on digits) alone, then two of them started together, each with its
   default thread count (every core this process may use). Printed: wall seconds, CPU seconds
   of the processes, and the time two take together over the time of one alone (target: at
   most 2.3; ideal 2.0 on a machine whose cores one job already fills) and the time of one
   alone (target: at most 35 s on 2 cores). Settings of OpenMP's idle threads: ``auto`` (none
   in the environment: ``nas`` chooses when it starts, spinning alone and sleeping beside
   other ``nas`` processes, :func:`nas.cli.main.quiet_idle_threads`), ``passive``
   (``OMP_WAIT_POLICY=PASSIVE`` for every process: the previous release's default) and
   ``active`` (threads spin while they wait for work, ``OMP_WAIT_POLICY=ACTIVE``).
2. **A sweep with one worker and with two**, on the same trials (same options and seed, a
   fresh directory each): ``nas sweep --workers 1`` against ``--workers 2`` (whose workers split
   the cores: one thread each on 2 cores). Printed: wall seconds and the speed-up.

    python experiments/benchmarks/concurrency.py                # about 8 minutes on 2 cores
    python experiments/benchmarks/concurrency.py --policies passive spin=10000 --skip-sweep

Run it on a quiet machine: anything else running skews every figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_PAIR = 2.3  # two main jobs together, over one alone
TARGET_ALONE = 35.0  # seconds of one main job alone (2 cores)
SWEEP = [
    "--budgets",
    "0.3,0.5,0.7",
    "--trials",
    "6",
    "--baseline-epochs",
    "3",
    "--warmup-epochs",
    "1",
    "--search-epochs",
    "3",
    "--finetune-epochs",
    "3",
    "--no-uniform",
    "--quiet",
]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_together(commands: list[list[str]], env: dict[str, str]) -> tuple[float, float]:
    """Start every command at once; (wall seconds until the last ends, CPU seconds of all)."""
    cpu0, start = cpu_seconds(), time.perf_counter()
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    for p, c in zip(procs, commands, strict=True):
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"error: {' '.join(c)} failed:\n{err}")
    return time.perf_counter() - start, cpu_seconds() - cpu0


def policy_env(policy: str) -> dict[str, str]:
    """The environment of an OpenMP idle-thread setting (see ``--policies``)."""
    if policy == "auto":  # nas chooses
        return {}
    if policy.startswith("spin="):
        return {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": policy.split("=", 1)[1]}
    return {"OMP_WAIT_POLICY": policy.upper()}


def nas(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--policies",
        nargs="+",
        default=["auto", "passive", "active"],
        help="OpenMP idle-thread settings to compare: auto (nas chooses), passive, active, or "
        "spin=N "
        "(OMP_WAIT_POLICY=ACTIVE GOMP_SPINCOUNT=N: spin N rounds, then sleep)",
    )
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    drop = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")
    base = {k: v for k, v in os.environ.items() if k not in drop}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} usable cores; python {sys.version.split()[0]}", flush=True)
    with tempfile.TemporaryDirectory(prefix="nas-concurrency-") as tmp:
        root = Path(tmp)

        def search(name: str) -> list[str]:
            return nas("search", "--out", str(root / name), "--quiet")

        rows = []
        for policy in args.policies:
            env = base | policy_env(policy)
            alone, alone_cpu = run_together([search(f"{policy}-alone")], env)
            pair, pair_cpu = run_together([search(f"{policy}-a"), search(f"{policy}-b")], env)
            rows.append((policy, alone, alone_cpu, pair, pair_cpu))
            print(
                f"main job, OpenMP {policy}: alone {alone:.1f} s ({alone_cpu:.0f} CPU-s); two "
                f"together {pair:.1f} s ({pair_cpu:.0f} CPU-s): {pair / alone:.2f}x",
                flush=True,
            )
        sweeps = []
        if not args.skip_sweep:
            env = base  # nas sweep's workers sleep (PASSIVE) whatever the machine runs
            for workers in (1, 2):
                out = root / f"sweep-{workers}"
                wall, cpu = run_together(
                    [nas("sweep", "--out", str(out), "--workers", str(workers), *SWEEP)], env
                )
                sweeps.append((workers, wall, cpu))
                print(f"sweep --workers {workers}: {wall:.1f} s ({cpu:.0f} CPU-s)", flush=True)

    print("\n| OpenMP idle threads | one main job s | two together s | ratio | CPU-s one / two |")
    print("| --- | --- | --- | --- | --- |")
    for policy, alone, alone_cpu, pair, pair_cpu in rows:
        print(
            f"| {policy} | {alone:.1f} | {pair:.1f} | {pair / alone:.2f} | "
            f"{alone_cpu:.0f} / {pair_cpu:.0f} |"
        )
    first = rows[0]  # the default setting (auto) when run with the default --policies
    verdict = "met" if first[3] / first[1] <= TARGET_PAIR else "MISSED"
    print(f"\ntarget ({first[0]}): two main jobs together <= {TARGET_PAIR}x one alone: {verdict}")
    verdict = "met" if first[1] <= TARGET_ALONE else "MISSED"
    print(f"target ({first[0]}): one main job alone <= {TARGET_ALONE:.0f} s: {verdict}")
    if sweeps:
        (_, one, _), (_, two, _) = sweeps
        print(
            f"sweep of {SWEEP[SWEEP.index('--trials') + 1]} trials: --workers 1 {one:.1f} s, "
            f"--workers 2 {two:.1f} s: {one / two:.2f}x faster with 2"
        )


if __name__ == "__main__":
    main()
