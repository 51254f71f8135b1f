"""What does training the supernet cost compared with training the plain full network?

For the CIFAR ResNet-20 and ResNet-56 spaces (``resnet20``, ``resnet56``: option A, only the
block-internal widths are searchable) and ``resnet56_b`` (option B: the residual streams of every
stage are coupled units too), input 3x32x32, batch 64, 10 classes, random data, on the CPU:

* plain step: forward + cross-entropy + backward + SGD step (+ LR scheduler step) of
  ``space.build()``, with the optimizer and schedule the search uses for its weights;
* supernet step: the search's weight step (``SearchRun.weight_step``: Gumbel-softmax masks
  drawn under ``no_grad``, then forward/backward/SGD on the supernet weights) on the supernet
  built exactly as the search builds it (``nas.width_search.build_supernet``);
* architecture step (``SearchRun.arch_step``) and the full search step (weight + arch step),
  for information.

Time: warm-up, then interleaved rounds (every step runs once per round, in rotating order, so all
see the same machine state); medians of each step, and the median (and quartiles) over rounds of
the ratio of two steps of the same round, which the target is judged on.

Memory of one training step, two measures:

* model state + activations: parameters, buffers and gradients, plus the activations saved for
  backward during the forward pass (unique tensor storages packed through
  ``torch.autograd.graph.saved_tensors_hooks``, parameters and buffers excluded) -- what dominates
  a step's peak, independent of the allocator;
* profiler peak: the peak, during one step, of the bytes allocated in that step and still live
  (``torch.profiler`` with ``profile_memory=True``) -- activations, new gradients and temporaries.

Targets (the issue's: "training-step time of the supernet against the plain full network"):
the supernet's training step -- the search's weight step -- takes <= 1.3 x the time of the plain
step, and <= 1.5 x its memory. A search iteration is that weight step plus an architecture step
(a second forward/backward, on a validation batch), so one search iteration costs about twice a
plain step; that ratio is printed next to the verdict for information and has no target.

    python experiments/benchmarks/supernet_overhead.py              # about 3 min on 2 idle cores
    python experiments/benchmarks/supernet_overhead.py --budget 5   # shorter, noisier
    python experiments/benchmarks/supernet_overhead.py --spaces resnet20 --budget 5
    python experiments/benchmarks/supernet_overhead.py --threads 1  # cores shared with others

On cores shared with other busy processes, two torch threads can make every step ten times slower
and very noisy (OpenMP threads waiting for each other); ``--threads 1`` is steadier there.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.profiler import ProfilerActivity, profile

import search_spaces
from nas.engine import make_optimizer, make_scheduler
from nas.width_search import SearchConfig, SearchRun, build_supernet
from nas.width_search.setup import search_budget
from search_spaces import SearchSpace

SPACES = ("resnet20", "resnet56", "resnet56_b")
INPUT_SIZE = (32, 32)
NUM_CLASSES = 10
TARGET_TIME = 1.3
TARGET_MEMORY = 1.5
MIB = 2**20

Step = Callable[[], object]


@dataclass
class Steps:
    """The three steps of one space and the tensors that are model state (not activations)."""

    plain: Step
    weight: Step
    arch: Step
    arch_full: Step  # the architecture step with a backward pass into every weight
    plain_state: list[Tensor]
    supernet_state: list[Tensor]


def make_steps(space: SearchSpace, batch: int) -> Steps:
    """Plain network and supernet (plus strategy) of ``space``, and one step closure for each."""
    torch.manual_seed(0)
    config = SearchConfig()
    full = space.build()
    device = torch.device("cpu")
    supernet, strategy = build_supernet(full, space, config, device)
    x = torch.randn(batch, 3, *INPUT_SIZE)
    y = torch.randint(0, NUM_CLASSES, (batch,))
    xv = torch.randn(batch, 3, *INPUT_SIZE)
    yv = torch.randint(0, NUM_CLASSES, (batch,))
    budget = search_budget(config, space)
    run = SearchRun(supernet, strategy, config, budget, [(x, y)], [(xv, yv)], [(xv, yv)], device)
    tau = config.tau0

    plain = copy.deepcopy(full).train()
    wconf = config.weight_config(run.total_epochs, config.lr)
    opt = make_optimizer(plain, wconf)
    sched = make_scheduler(opt, wconf, run.steps)

    def plain_step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(plain(x), y)
        loss.backward()
        opt.step()
        sched.step()
        return float(loss.detach())

    def weight_step() -> float:
        return run.weight_step(x, y, tau)

    def arch_step() -> tuple[float, float]:
        return run.arch_step(xv, yv, tau, 0.5)

    def arch_full_backward() -> float:
        """The architecture step as the previous release ran it: the backward pass through
        every weight as well (gradients computed, then thrown away)."""
        assert run.a_opt is not None  # width-gumbel has architecture parameters
        strategy.gate("sample", tau)
        loss = F.cross_entropy(supernet(xv), yv)
        run.a_opt.zero_grad(set_to_none=True)
        supernet.zero_grad(set_to_none=True)
        loss.backward()
        run.a_opt.step()
        supernet.set_masks(None)
        return float(loss.detach())

    return Steps(
        plain_step,
        weight_step,
        arch_step,
        arch_full_backward,
        _state_tensors(plain),
        _state_tensors(supernet) + _state_tensors(strategy),
    )


def _state_tensors(module: nn.Module) -> list[Tensor]:
    return [*module.parameters(), *module.buffers()]


# -- time ----------------------------------------------------------------------------------------
def time_steps(
    steps: dict[str, Step], budget_s: float, warmup: int, rounds: int | None = None
) -> dict[str, list[float]]:
    """Per step, the seconds of each round: ``warmup`` untimed rounds, then rounds in which every
    step runs once (rotating the order): ``rounds`` of them, or as many as fit in ``budget_s``
    (5 to 40)."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    if rounds is None:
        one_round = sum(_timed(steps[n]) for n in names)
        rounds = max(5, min(40, int(budget_s / one_round)))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(_timed(steps[name]))
    return times


def _timed(step: Step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


# -- memory --------------------------------------------------------------------------------------
def state_bytes(tensors: list[Tensor]) -> int:
    """Parameters and buffers, plus a gradient of the same size for every trainable tensor."""
    total = 0
    for t in tensors:
        size = t.numel() * t.element_size()
        total += size * (2 if t.requires_grad else 1)
    return total


def saved_activation_bytes(step: Step, state: list[Tensor]) -> int:
    """Bytes of the distinct storages saved for backward during ``step`` (state excluded)."""
    exclude = {t.untyped_storage().data_ptr() for t in state}
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in exclude:
            storages[s.data_ptr()] = s.nbytes()
        return t

    def unpack(t: Tensor) -> Tensor:
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        step()
    return sum(storages.values())


def profiler_peak_bytes(step: Step) -> int:
    """Peak of the bytes allocated during ``step`` and still live, from ``torch.profiler``.

    One unprofiled step first, so that every tensor already alive was allocated outside the
    profiler and its release (e.g. the old gradients) does not lower the count.
    """
    step()
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        with _quiet_stderr():
            prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text(encoding="utf-8"))["traceEvents"]
    totals = [
        (int(e["args"]["Total Allocated"]), int(e["args"]["Bytes"]))
        for e in events
        if e.get("name") == "[memory]" and int(e["args"].get("Device Type", 0)) == 0
    ]
    if not totals:
        return 0
    before = totals[0][0] - totals[0][1]  # the counter also holds earlier profiling sessions
    return max(t for t, _ in totals) - before


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's C++ log lines (file descriptor 2) for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


# -- report --------------------------------------------------------------------------------------
@dataclass
class Row:
    space: str
    units: int
    rounds: int
    plain_ms: float
    weight_ms: float
    arch_ms: float
    arch_full_ms: float
    arch_q: tuple[float, float, float]  # quartiles of arch step / arch step with full backward
    search_ms: float
    plain_mib: float
    supernet_mib: float
    plain_act_mib: float
    supernet_act_mib: float
    plain_prof_mib: float
    supernet_prof_mib: float
    time_q: tuple[float, float, float]  # quartiles of the per-round supernet/plain time ratios
    search_q: tuple[float, float, float]  # the same for (weight + arch step) / plain

    @property
    def time_ratio(self) -> float:
        return self.time_q[1]

    @property
    def search_ratio(self) -> float:
        return self.search_q[1]

    @property
    def memory_ratio(self) -> float:
        return self.supernet_mib / self.plain_mib

    @property
    def profiler_ratio(self) -> float:
        return self.supernet_prof_mib / self.plain_prof_mib


def bench_space(name: str, batch: int, budget_s: float, warmup: int, rounds: int | None) -> Row:
    space = search_spaces.create(name, num_classes=NUM_CLASSES, input_size=INPUT_SIZE)
    s = make_steps(space, batch)
    plain_act = saved_activation_bytes(s.plain, s.plain_state)
    super_act = saved_activation_bytes(s.weight, s.supernet_state)
    plain_prof = profiler_peak_bytes(s.plain)
    super_prof = profiler_peak_bytes(s.weight)
    steps = {"plain": s.plain, "weight": s.weight, "arch": s.arch, "arch_full": s.arch_full}
    times = time_steps(steps, budget_s, warmup, rounds)
    search = [w + a for w, a in zip(times["weight"], times["arch"], strict=True)]
    return Row(
        space=name,
        units=len(space.units),
        rounds=len(times["plain"]),
        plain_ms=statistics.median(times["plain"]) * 1e3,
        weight_ms=statistics.median(times["weight"]) * 1e3,
        arch_ms=statistics.median(times["arch"]) * 1e3,
        arch_full_ms=statistics.median(times["arch_full"]) * 1e3,
        arch_q=_paired_quartiles(times["arch"], times["arch_full"]),
        search_ms=statistics.median(search) * 1e3,
        plain_mib=(state_bytes(s.plain_state) + plain_act) / MIB,
        supernet_mib=(state_bytes(s.supernet_state) + super_act) / MIB,
        plain_act_mib=plain_act / MIB,
        supernet_act_mib=super_act / MIB,
        plain_prof_mib=plain_prof / MIB,
        supernet_prof_mib=super_prof / MIB,
        time_q=_paired_quartiles(times["weight"], times["plain"]),
        search_q=_paired_quartiles(search, times["plain"]),
    )


def _paired_quartiles(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Quartiles of the per-round ratios ``a[i] / b[i]``: both steps of a round ran back to back,
    so the ratio is steadier than a ratio of medians on a machine whose load changes."""
    q1, q2, q3 = statistics.quantiles(
        [x / y for x, y in zip(a, b, strict=True)], n=4, method="inclusive"
    )
    return q1, q2, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--spaces", nargs="+", default=list(SPACES), help=f"default: {' '.join(SPACES)}"
    )
    parser.add_argument("--batch", type=int, default=64, help="batch size; default 64")
    parser.add_argument(
        "--budget", type=float, default=40.0, help="seconds of timing per space; default 40"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds; default 3")
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds per space (overrides --budget)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch {args.batch}, "
        f"3x{INPUT_SIZE[0]}x{INPUT_SIZE[1]}, {NUM_CLASSES} classes, random data; "
        "medians of interleaved rounds"
    )
    rows = []
    for name in args.spaces:
        row = bench_space(name, args.batch, args.budget, args.warmup, args.rounds)
        rows.append(row)
        print(f"  {name}: {row.units} searchable units, {row.rounds} rounds", flush=True)

    print("\ntime per training step: medians (ms), and per-round ratios: median [q1-q3]")
    header = (
        f"{'space':<11} {'plain':>8} {'supernet':>9} {'arch':>8} {'search':>8} "
        f"{'supernet/plain':>20} {'search/plain':>20} {'med/med':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        t, q = r.time_q, r.search_q
        print(
            f"{r.space:<11} {r.plain_ms:>8.1f} {r.weight_ms:>9.1f} {r.arch_ms:>8.1f} "
            f"{r.search_ms:>8.1f} {f'{t[1]:.2f} [{t[0]:.2f}-{t[2]:.2f}]':>20} "
            f"{f'{q[1]:.2f} [{q[0]:.2f}-{q[2]:.2f}]':>20} {r.weight_ms / r.plain_ms:>7.2f}"
        )
    print(
        "supernet = the search's weight step; search = weight step + architecture step (one "
        "search iteration);\nratios: median and quartiles over rounds of (step / plain step of "
        "the same round), a wide range = a noisy\nmachine; med/med = median supernet / median "
        "plain"
    )

    print("\nmemory of one training step (MiB)")
    header = (
        f"{'space':<11} {'plain':>7} {'(act)':>7} {'supernet':>9} {'(act)':>7} {'ratio':>6} "
        f"{'prof plain':>10} {'prof super':>10} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.space:<11} {r.plain_mib:>7.1f} {r.plain_act_mib:>7.1f} {r.supernet_mib:>9.1f} "
            f"{r.supernet_act_mib:>7.1f} {r.memory_ratio:>6.2f} {r.plain_prof_mib:>10.1f} "
            f"{r.supernet_prof_mib:>10.1f} {r.profiler_ratio:>6.2f}"
        )
    print(
        "plain / supernet = parameters + buffers + gradients + activations saved for backward "
        "(act); prof = torch.profiler peak of the bytes allocated in the step"
    )

    print("\narchitecture step: backward into the architecture parameters only, against the same")
    print("step with a backward pass through every weight (as the previous release ran it)")
    for r in rows:
        q = r.arch_q
        print(
            f"{r.space:<11} arch-only {r.arch_ms:>7.1f} ms, full backward "
            f"{r.arch_full_ms:>7.1f} ms: {q[1]:.2f} x [{q[0]:.2f}-{q[2]:.2f}] of the time "
            f"({1 - q[1]:.0%} saved)"
        )

    print()
    for r in rows:
        status = "met" if r.time_ratio <= TARGET_TIME else "MISSED"
        print(
            f"target {r.space} time, supernet training step (the search's weight step) vs plain "
            f"full-network training step: {r.time_ratio:.2f} x (<= {TARGET_TIME}): {status}; "
            f"for information, a whole search iteration (weight + architecture step) vs plain "
            f"step: {r.search_ratio:.2f} x (no target)"
        )
        for what, ratio in (
            ("memory", r.memory_ratio),
            ("memory (profiler peak)", r.profiler_ratio),
        ):
            status = "met" if ratio <= TARGET_MEMORY else "MISSED"
            print(
                f"target {r.space} {what}, supernet weight step vs plain full-network step: "
                f"{ratio:.2f} x (<= {TARGET_MEMORY}): {status}"
            )


if __name__ == "__main__":
    main()
