"""``nas latency-table``: the options parsed into one call of
:func:`nas.cost.timing.measure_latency_table` (a space's per-layer latency table measured on this
machine), and its result printed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from nas.engine.config import ThreadOptions
from nas.jobs.base import Command
from nas.jobs.profile import RuntimeOptions, TaskOptions
from nas.options import option

__all__ = ["COMMAND", "LatencyTableOptions"]


@dataclass
class LatencyTableOptions(ThreadOptions, TaskOptions, RuntimeOptions):
    """What ``nas latency-table`` measures and where it writes it."""

    group: ClassVar[str] = "latency table"

    space: str = option(
        "resnet20", "search space (see nas spaces)", choices="search_spaces:SPACE_NAMES"
    )
    batch: int = option(16, "batch size the latencies are measured at", ge=1, le=4096)
    device: str = option("cpu", "cpu, cuda, cuda:1...")
    step: int = option(
        0, "width grid step in channels (0: every 4 up to 64 channels, ~17 points above)", ge=0
    )
    block: int = option(
        -1,
        "also measure one past every multiple of this many channels, where the kernels step up "
        "(-1: by the device, 16 with AVX-512, else 8; 0: none)",
        ge=-1,
    )
    rounds: int = option(7, "interleaved timing rounds per grid point (the median is kept)", ge=3)
    out: str = option("latency_table.json", "where the table is written")
    resume: bool = option(False, "continue a partial table at --out")
    overwrite: bool = option(False, "replace an existing table at --out")
    progress: bool = option(True, "no progress bar", flag="--quiet")


def _cli(o: LatencyTableOptions) -> int:
    from nas.cost.latency import LatencyCost
    from nas.cost.timing import measure_latency_table

    space = o.task_space(o.space)
    threads = o.thread_count()
    start = time.perf_counter()
    table = measure_latency_table(
        space,
        o.out,
        batch=o.batch,
        device=o.device,
        step=o.step,
        block=None if o.block < 0 else o.block,
        rounds=o.rounds,
        resume=o.resume,
        overwrite=o.overwrite,
        progress=o.progress,
        threads=threads,
        backend=o.backend or "torch",
    )
    cost = LatencyCost(space, table=table)
    points = sum(len(e.grid_in) * len(e.grid_out) for e in table.entries.values())
    full = table.calibration[0]["measured_ms"]
    print(
        f"{space.name} at batch {o.batch} on {table.env['device']} ({table.env['backend']} "
        f"{table.env['runtime']}, {threads} threads): "
        f"{len(table.entries)} layer configurations, {points} grid points in "
        f"{time.perf_counter() - start:.0f} s; full network {full:.3f} ms measured, "
        f"{cost.full():.3f} ms predicted (fixed {table.fixed_ms:.3f} ms, scale "
        f"{table.scale:.3f}) -> {Path(o.out)}"
    )
    return 0


COMMAND = Command(
    options=(LatencyTableOptions,),
    run=_cli,
    description="Measure every layer configuration a space can produce (conv + BN + ReLU on a "
    "grid of input x output widths) on this machine, at one batch size and thread count, and "
    "fit the per-network cost on whole networks: the table --cost latency reads.",
)
