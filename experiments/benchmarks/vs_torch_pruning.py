"""Our traced-space pruning against Torch-Pruning, side by side, at 50 % of the MACs.

For torchvision mobilenet_v2, efficientnet_b0, shufflenet_v2_x1_0 and resnet50 (``weights=None``,
1000 classes, 224x224, seeded random weights and random BN statistics, so that a channel switched
off after its BN differs from one switched off before it), both tools prune by L1 filter norms
to half the MACs:

* **ours**: trace the space (``torchvision:NAME``), ``channel_scores(..., "l1")``, the ``global``
  allocation at 50 % of the space's MACs (tolerance 2 %), ``extract`` (``--allocations global
  uniform`` adds a row with the same ratio for every unit, Torch-Pruning's rule; the notes name
  each row's narrowest units);
* **torch-pruning** (``pip install -e ".[tp]"``): ``tp.pruner.MagnitudePruner`` with
  ``tp.importance.MagnitudeImportance(p=1)`` (its default group L1, mean-normalised), the
  classifier ignored, one uniform per-layer ratio (``global_pruning=False``, its default), the
  ratio bisected until the pruned network is within 1 % of 50 % of the original's MACs.

Measured per network (the original, ours, Torch-Pruning's):

1. MACs (``nas.cost.measure_macs``, FlopCounterMode / 2, one image: the one counter for both) and
   parameters;
2. whether the pruned network computes what the original computes with the pruned channels
   switched off (max |difference| / max |output| on random images below 1e-4): ours against
   ``mask_channels``; Torch-Pruning's against the original with forward hooks zeroing the
   output channels its groups removed (recorded from ``pruner.step(interactive=True)``: a BN's
   output, or a conv/linear output that no pruned BN normalises);
3. pruning wall time (ours: the trace, scores, allocation, extraction; Torch-Pruning: building its
   dependency graph and one step at the final ratio, the ratio search reported apart) and peak
   memory in a second, separate run: the Python heap (tracemalloc; tensor storage is allocated
   outside it) and the process's resident memory above its level at the start (sampled every
   2 ms; Linux only);
4. save/load without pickle: ours ``save_model`` then ``torch.load(model.pt, weights_only=True)``
   and ``nas.load_model``; Torch-Pruning's ``torch.save(model)`` then
   ``torch.load(weights_only=True)``, and ``tp.state_dict``/``tp.load_state_dict``;
5. CPU latency at batch 1 and 16 (fixed threads, ``torch.inference_mode``, warm-up, then the
   median of interleaved rounds).

A tool that fails on a network gets a row with the first line of its error; nothing stops the
benchmark. Prints a markdown table and writes ``results.json`` and ``report.md``.

    python experiments/benchmarks/vs_torch_pruning.py                  # the four networks
    python experiments/benchmarks/vs_torch_pruning.py --models resnet50 --threads 4
    python experiments/benchmarks/vs_torch_pruning.py --allocations global uniform
    python experiments/benchmarks/vs_torch_pruning.py --quick          # one network, 64x64
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import importlib
import importlib.metadata
import json
import math
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import torch
import torchvision
from torch import nn

import search_spaces
from nas.cost import count_model_params, measure_macs
from nas.extraction import extract, load_model, mask_channels, save_model, spec_masks
from nas.importance import channel_order, channel_scores
from nas.pruning.allocation import allocate
from search_spaces import SearchSpace, WidthSpec

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("mobilenet_v2", "efficientnet_b0", "shufflenet_v2_x1_0", "resnet50")
TARGET = 0.5  # of the original's MACs
ALLOCATION_TOLERANCE = 0.02  # ours: allocate's band
TP_BAND = 0.01  # Torch-Pruning: the bisected ratio's band around the target
TP_STEPS = 24  # at most this many bisection steps
MATCH = 1e-4  # max relative difference below which a network "computes the masked original"
BATCHES = (1, 16)
SEED = 0
CHECK_IMAGES = 4
WARMUP = 3
SIZE = (224, 224)
QUICK_SIZE = (64, 64)
QUICK_RUNS = 5
INSTALL = 'error: pip install -e ".[tp]"'

T = TypeVar("T")


# -- helpers ---------------------------------------------------------------------------------------
def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (terminal colours removed), for a row or a note; a
    refused ``weights_only`` load adds the global it refused."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    tail = f" [unsupported global {refused.group(1)}]" if refused else ""
    return f"{type(exc).__name__}: {lines[0]}{tail}"


def relative_difference(reference: torch.Tensor, other: torch.Tensor) -> float:
    """max |reference - other| / max |reference|."""
    scale = reference.abs().max().clamp_min(1e-12)
    return float((reference - other).abs().max() / scale)


def timed(run: Callable[[], T]) -> tuple[T, float]:
    """The result of ``run()`` and its wall time in seconds."""
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def _rss_bytes() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import resource

    return pages * resource.getpagesize()


@dataclass
class Memory:
    """Peak memory of one run: the Python heap (tracemalloc) and resident memory above the
    start (None where /proc is missing)."""

    python_peak: int = 0
    rss_peak: int | None = None


def _trim() -> None:
    """Hand freed heap memory back to the system (glibc), so that resident memory measured
    from here counts what the next block allocates, not what an earlier one left free."""
    import ctypes
    import gc

    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextmanager
def peak_memory() -> Iterator[Memory]:
    """Measure the peak memory of the block (filled in when it ends)."""
    memory = Memory()
    _trim()
    start = _rss_bytes()
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            rss = _rss_bytes()
            if rss is not None:
                samples.append(rss)

    sampler = threading.Thread(target=sample, daemon=True)
    tracemalloc.start()
    tracemalloc.reset_peak()
    sampler.start()
    try:
        yield memory
    finally:
        done.set()
        sampler.join()
        memory.python_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        end = _rss_bytes()
        if start is not None and end is not None:
            memory.rss_peak = max([*samples, end]) - start


def randomize_bn(model: nn.Module) -> None:
    """Random BN scale, shift and running statistics (from the global seeded generator): a
    channel switched off before its BN then differs from one switched off after it."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.5, 0.5)
                if m.running_mean is not None and m.running_var is not None:
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)


def classifier(model: nn.Module) -> nn.Module:
    """The network's last linear layer (its classifier)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the network has no linear classifier")
    return linears[-1]


@torch.inference_mode()
def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's output on ``x`` (eval mode)."""
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor)
    return out


# -- the networks ----------------------------------------------------------------------------------
@dataclass
class Row:
    """One (network, tool) line of the table; None where not measured."""

    model: str
    tool: str
    input_size: tuple[int, int]
    macs: int | None = None
    mac_ratio: float | None = None
    params: int | None = None
    matches_masked: bool | None = None
    max_rel_diff: float | None = None
    prune_s: float | None = None
    python_peak_mb: float | None = None
    rss_peak_mb: float | None = None
    weights_only: bool | None = None  # saved and loaded back without pickle
    save_load: str | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def space_name(arch: str) -> str:
    return f"torchvision:{arch}"


def build_original(arch: str, size: tuple[int, int]) -> tuple[SearchSpace, nn.Module]:
    """The traced space and the full network (seeded weights, random BN statistics, eval)."""
    space = search_spaces.create(space_name(arch), num_classes=1000, input_size=size)
    torch.manual_seed(SEED)
    model = space.build()
    randomize_bn(model)
    return space, model.eval()


def fresh_space(arch: str, size: tuple[int, int]) -> SearchSpace:
    """A new, untraced space object (``create`` caches its spaces), traced here: what a user's
    first ``search_spaces.create`` costs."""
    name = space_name(arch)
    space = search_spaces.get_entry(name).factory(name, 1000, 3, size)
    space.units  # noqa: B018  (traces)
    return space


@dataclass
class Ours:
    space: SearchSpace
    spec: WidthSpec
    order: dict[str, torch.Tensor]
    model: nn.Module


def prune_ours(
    arch: str, size: tuple[int, int], original: nn.Module, allocation: str = "global"
) -> Ours:
    """Trace, score (L1), allocate (``global``: 50 % of the space's MACs) and extract."""
    space = fresh_space(arch, size)
    scores = channel_scores(original, space, "l1")
    widths = allocate(
        allocation, space, scores, TARGET * space.macs(), tolerance=ALLOCATION_TOLERANCE
    )
    spec = space.spec(widths)
    order = channel_order(original, space, "l1")
    return Ours(space, spec, order, extract(original, spec, order).eval())


@dataclass
class TorchPruned:
    model: nn.Module
    zeroed: dict[str, list[int]]  # module name in the original -> output channels pruned
    ratio: float


def prune_tp(tp: Any, original: nn.Module, size: tuple[int, int], ratio: float) -> TorchPruned:
    """Torch-Pruning at one uniform ratio on a copy of ``original``, recording per module the
    output channels its groups remove (in the original's channel indices: every group's
    importance and indices are computed before any group is pruned)."""
    model = copy.deepcopy(original).eval()
    return _prune_tp(tp, model, size, ratio)


def _prune_tp(tp: Any, model: nn.Module, size: tuple[int, int], ratio: float) -> TorchPruned:
    names = {id(m): n for n, m in model.named_modules()}
    pruner = tp.pruner.MagnitudePruner(
        model,
        torch.randn(1, 3, *size),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio,
        global_pruning=False,
        ignored_layers=[classifier(model)],
    )
    graph = pruner.DG
    removed: dict[str, set[int]] = {}
    followed_by_bn: dict[str, list[str]] = {}
    for group in pruner.step(interactive=True):
        for dep, idxs in group:
            module = dep.target.module
            if id(module) not in names or not graph.is_out_channel_pruning_fn(dep.handler):
                continue  # an op of the graph (add, cat, flatten), or an input-channel cut
            name = names[id(module)]
            removed.setdefault(name, set()).update(int(i) for i in idxs)
            node = graph.module2node.get(module)
            nexts = [n.module for n in node.outputs] if node is not None else []
            if nexts and all(isinstance(n, nn.modules.batchnorm._BatchNorm) for n in nexts):
                followed_by_bn[name] = [names.get(id(n), "") for n in nexts]
        group.prune()
    zeroed: dict[str, list[int]] = {}
    for name, idx in removed.items():
        bns = followed_by_bn.get(name)
        if bns and all(removed.get(bn, set()) >= idx for bn in bns):
            continue  # its BNs switch these channels off
        zeroed[name] = sorted(idx)
    return TorchPruned(model.eval(), zeroed, ratio)


@dataclass
class RatioSearch:
    ratio: float
    macs: int
    steps: int
    seconds: float
    within: bool


def search_tp_ratio(
    tp: Any, original: nn.Module, size: tuple[int, int], target: float
) -> RatioSearch:
    """Bisect Torch-Pruning's uniform ratio until its network is within ``TP_BAND`` of
    ``target`` MACs (measure_macs); the nearest ratio tried if none is."""
    start = time.perf_counter()
    lo, hi = 0.0, 1.0
    ratio = 1.0 - math.sqrt(TARGET)  # MACs fall about as (1 - ratio)^2
    best: tuple[float, float, int] | None = None  # (|error|, ratio, macs)
    for step in range(1, TP_STEPS + 1):
        macs = measure_macs(prune_tp(tp, original, size, ratio).model, (3, *size))
        error = abs(macs - target) / target
        if best is None or error < best[0]:
            best = (error, ratio, macs)
        if error <= TP_BAND:
            return RatioSearch(ratio, macs, step, time.perf_counter() - start, True)
        if macs > target:
            lo = ratio
        else:
            hi = ratio
        ratio = (lo + hi) / 2
    assert best is not None
    return RatioSearch(best[1], best[2], TP_STEPS, time.perf_counter() - start, False)


@contextmanager
def zeroed_outputs(model: nn.Module, channels: Mapping[str, list[int]]) -> Iterator[None]:
    """Forward hooks on ``model`` that zero the given output channels of the named modules."""

    def zero(idx: torch.Tensor) -> Callable[[nn.Module, object, torch.Tensor], torch.Tensor]:
        def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
            output = output.clone()
            output[:, idx] = 0
            return output

        return hook

    handles = [
        model.get_submodule(name).register_forward_hook(zero(torch.tensor(idx, dtype=torch.long)))
        for name, idx in channels.items()
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# -- save and load ---------------------------------------------------------------------------------
def save_load_ours(ours: Ours, x: torch.Tensor) -> tuple[bool, str]:
    """save_model, then torch.load(model.pt, weights_only=True) and nas.load_model."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            save_model(ours.model, ours.spec, tmp, torchscript=False)
            state = torch.load(Path(tmp) / "model.pt", weights_only=True)
            assert isinstance(state, dict)
            loaded = load_model(tmp)
        except Exception as exc:  # report, never stop the benchmark
            return False, f"save_model/load_model failed: {first_line(exc)}"
    diff = relative_difference(outputs(ours.model, x), outputs(loaded, x))
    same = "same output" if diff == 0.0 else f"output differs by {diff:.1e}"
    return True, f"model.pt loads with weights_only=True; nas.load_model: {same}"


def save_load_tp(tp: Any, pruned: nn.Module, fresh: nn.Module, x: torch.Tensor) -> tuple[bool, str]:
    """torch.save(model) + torch.load(weights_only=True); tp.state_dict + tp.load_state_dict."""
    notes = []
    ok = False
    with tempfile.TemporaryDirectory() as tmp:
        whole = Path(tmp) / "model.pth"
        torch.save(pruned, whole)
        try:
            torch.load(whole, weights_only=True)
            ok = True
            notes.append("torch.save(model) loads with weights_only=True")
        except Exception as exc:
            notes.append(f"torch.save(model) + weights_only=True: {first_line(exc)}")
        if not (hasattr(tp, "state_dict") and hasattr(tp, "load_state_dict")):
            notes.append("no tp.state_dict/tp.load_state_dict")
            return ok, "; ".join(notes)
        path = Path(tmp) / "tp_state.pth"
        try:
            torch.save(tp.state_dict(pruned), path)
        except Exception as exc:
            notes.append(f"tp.state_dict: {first_line(exc)}")
            return ok, "; ".join(notes)
        try:
            state = torch.load(path, weights_only=True)
            ok = True
            needs = "loads with weights_only=True"
        except Exception as exc:
            needs = f"needs pickle (weights_only=True: {first_line(exc)})"
            try:
                state = torch.load(path, weights_only=False)
            except Exception as exc2:
                notes.append(f"tp.state_dict {needs}; with pickle: {first_line(exc2)}")
                return ok, "; ".join(notes)
        try:
            loaded = tp.load_state_dict(fresh, state)
            diff = relative_difference(outputs(pruned, x), outputs(loaded, x))
            same = "same output" if diff == 0.0 else f"output differs by {diff:.1e}"
        except Exception as exc:
            same = f"tp.load_state_dict failed: {first_line(exc)}"
        notes.append(f"tp.state_dict {needs}; tp.load_state_dict into an unpruned copy: {same}")
    return ok, "; ".join(notes)


# -- latency ---------------------------------------------------------------------------------------
def latencies(
    models: Mapping[str, nn.Module], size: tuple[int, int], runs: int
) -> dict[str, dict[str, float]]:
    """Per tool, per batch: the median wall time (ms) of ``runs`` interleaved rounds after
    ``WARMUP`` warm-up calls each."""
    result: dict[str, dict[str, float]] = {tool: {} for tool in models}
    gen = torch.Generator().manual_seed(SEED)
    with torch.inference_mode():
        for batch in BATCHES:
            x = torch.randn(batch, 3, *size, generator=gen)
            times: dict[str, list[float]] = {tool: [] for tool in models}
            for m in models.values():
                for _ in range(WARMUP):
                    m(x)
            for _ in range(runs):
                for tool, m in models.items():
                    start = time.perf_counter()
                    m(x)
                    times[tool].append(time.perf_counter() - start)
            for tool, t in times.items():
                result[tool][str(batch)] = statistics.median(t) * 1e3
    return result


# -- one network -----------------------------------------------------------------------------------
def bench_model(
    tp: Any, arch: str, size: tuple[int, int], runs: int, allocations: list[str]
) -> list[Row]:
    """The original's, ours (one row per allocation) and Torch-Pruning's rows of one network."""
    shape = (3, *size)
    base = Row(arch, "original", size)
    ours_rows = {a: Row(arch, ours_tool(a), size) for a in allocations}
    tp_row = Row(arch, "torch-pruning", size)
    rows = [base, *ours_rows.values(), tp_row]
    try:
        _, original = build_original(arch, size)
    except Exception as exc:
        for row in rows:
            row.error = f"cannot build: {first_line(exc)}"
        return rows
    full_macs = measure_macs(original, shape)
    base.macs, base.mac_ratio, base.params = full_macs, 1.0, count_model_params(original)
    x = torch.randn(CHECK_IMAGES, *shape, generator=torch.Generator().manual_seed(SEED + 1))
    reference = outputs(original, x)
    timing: dict[str, nn.Module] = {"original": original}
    for allocation, row in ours_rows.items():
        _log(f"{arch}: {row.tool}")
        try:
            timing[row.tool] = bench_ours(row, arch, size, original, allocation, x)
        except Exception as exc:  # an API failure is a result, not a crash
            row.error = first_line(exc)
            _log(f"{arch}: {row.tool} failed: {row.error}")
    _log(f"{arch}: torch-pruning (bisecting the ratio)")
    try:
        timing[tp_row.tool] = bench_tp(tp_row, tp, size, original, x)
    except Exception as exc:  # Torch-Pruning cannot prune every network
        tp_row.error = first_line(exc)
        _log(f"{arch}: torch-pruning failed: {tp_row.error}")
    assert relative_difference(reference, outputs(original, x)) == 0.0, "hooks left behind"
    _log(f"{arch}: latency ({', '.join(timing)})")
    for tool, ms in latencies(timing, size, runs).items():
        next(r for r in rows if r.tool == tool).latency_ms = ms
    return rows


def ours_tool(allocation: str) -> str:
    return f"ours ({allocation})"


def bench_ours(
    row: Row,
    arch: str,
    size: tuple[int, int],
    original: nn.Module,
    allocation: str,
    x: torch.Tensor,
) -> nn.Module:
    """Fill ``row`` for our pruning with ``allocation``; the pruned network."""
    shape = (3, *size)
    ours, row.prune_s = timed(lambda: prune_ours(arch, size, original, allocation))
    with peak_memory() as mem:
        prune_ours(arch, size, original, allocation)
    row.python_peak_mb = mem.python_peak / 2**20
    row.rss_peak_mb = None if mem.rss_peak is None else mem.rss_peak / 2**20
    small = ours.model
    row.macs = measure_macs(small, shape)
    full = measure_macs(original, shape)
    row.mac_ratio = row.macs / full
    row.params = count_model_params(small)
    analytic = ours.space.macs(ours.spec.widths)
    maximum = ours.space.max_widths
    row.extra.update(
        analytic_macs=analytic,
        widths=dict(ours.spec.widths),
        units=len(ours.space.units),
        frozen=[g.reason for g in ours.space.frozen],
    )
    if analytic != row.macs:
        row.notes.append(f"analytic MACs {analytic:,} != measured {row.macs:,}")
    narrow = sorted(ours.spec.widths, key=lambda u: ours.spec.widths[u] / maximum[u])[:4]
    row.notes.append(
        "narrowest units " + ", ".join(f"{u} {ours.spec.widths[u]}/{maximum[u]}" for u in narrow)
    )
    handles = mask_channels(original, ours.space, spec_masks(ours.spec, ours.order))
    try:
        masked = outputs(original, x)
    finally:
        for h in handles:
            h.remove()
    row.max_rel_diff = relative_difference(masked, outputs(small, x))
    row.matches_masked = row.max_rel_diff < MATCH
    row.weights_only, row.save_load = save_load_ours(ours, x)
    return small


def bench_tp(
    row: Row, tp: Any, size: tuple[int, int], original: nn.Module, x: torch.Tensor
) -> nn.Module:
    """Fill ``row`` for Torch-Pruning (ratio bisected to the target); the pruned network."""
    shape = (3, *size)
    full = measure_macs(original, shape)
    found = search_tp_ratio(tp, original, size, TARGET * full)
    row.extra.update(
        pruning_ratio=found.ratio,
        ratio_search_steps=found.steps,
        ratio_search_s=found.seconds,
        within_band=found.within,
    )
    row.notes.append(
        f"pruning_ratio {found.ratio:.4f} after {found.steps} bisection steps "
        f"({found.seconds:.1f} s, not in the time column)"
    )
    if not found.within:
        row.notes.append(f"no ratio within {TP_BAND:.0%} of the target MACs")
    ratio = found.ratio
    timed_copy = copy.deepcopy(original).eval()  # copied outside the measurements
    pruned, row.prune_s = timed(lambda: _prune_tp(tp, timed_copy, size, ratio))
    traced_copy = copy.deepcopy(original).eval()
    with peak_memory() as mem:
        _prune_tp(tp, traced_copy, size, ratio)
    del traced_copy
    row.python_peak_mb = mem.python_peak / 2**20
    row.rss_peak_mb = None if mem.rss_peak is None else mem.rss_peak / 2**20
    row.macs = measure_macs(pruned.model, shape)
    row.mac_ratio = row.macs / full
    row.params = count_model_params(pruned.model)
    with zeroed_outputs(original, pruned.zeroed):
        masked = outputs(original, x)
    row.max_rel_diff = relative_difference(masked, outputs(pruned.model, x))
    row.matches_masked = row.max_rel_diff < MATCH
    fresh = copy.deepcopy(original)
    row.weights_only, row.save_load = save_load_tp(tp, pruned.model, fresh, x)
    return pruned.model


def _log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# -- the report ------------------------------------------------------------------------------------
HEADER = (
    "model",
    "tool",
    "MACs (M)",
    "MAC ratio",
    "params (M)",
    "= masked original (max rel. diff)",
    "prune s",
    "Python peak MB",
    "RSS peak MB",
    "save/load without pickle",
    "batch 1 ms",
    "batch 16 ms",
)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table_line(row: Row) -> list[str]:
    """The table's cells of one row."""
    if row.error is not None and row.macs is None:
        return [row.model, row.tool, f"failed: {row.error}", *["-"] * (len(HEADER) - 3)]
    if row.matches_masked is None:
        match = "-"
    else:
        match = f"{'yes' if row.matches_masked else 'NO'} ({row.max_rel_diff:.1e})"
    if row.tool == "original" or row.weights_only is None:
        save = "-"
    else:
        save = "yes" if row.weights_only else "no"
    return [
        row.model,
        row.tool,
        _num(None if row.macs is None else row.macs / 1e6, ".1f"),
        _num(row.mac_ratio, ".3f"),
        _num(None if row.params is None else row.params / 1e6, ".2f"),
        match,
        _num(row.prune_s, ".2f"),
        _num(row.python_peak_mb, ".1f"),
        _num(row.rss_peak_mb, ".0f"),
        save,
        _num(row.latency_ms.get("1"), ".2f"),
        _num(row.latency_ms.get("16"), ".1f"),
    ]


def table(rows: list[Row]) -> str:
    """The markdown table of all rows."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(table_line(r)) + " |" for r in rows]
    return "\n".join(lines)


def notes(rows: list[Row]) -> str:
    """The details behind the table's cells, one bullet per row that has any."""
    out = []
    for r in rows:
        details = list(r.notes)
        if r.error is not None:
            details.insert(0, f"error: {r.error}")
        if r.save_load:
            details.append(f"save/load: {r.save_load}")
        if details:
            out.append(f"- {r.model} / {r.tool}: " + "; ".join(details))
    return "\n".join(out)


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip()


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), ""
    )


def provenance(args: argparse.Namespace, tp: ModuleType, size: tuple[int, int]) -> dict[str, Any]:
    """Where and how the rows were measured."""
    try:
        tp_version = importlib.metadata.version("torch-pruning")
    except importlib.metadata.PackageNotFoundError:
        tp_version = str(getattr(tp, "__version__", "?"))
    return {
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "processor": platform.processor(),
        "cpu": _cpu_name(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "runs": args.runs,
        "quick": args.quick,
        "input_size": list(size),
        "target_mac_ratio": TARGET,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_pruning": tp_version,
        "command": shlex.join(
            ["python", "experiments/benchmarks/vs_torch_pruning.py", *sys.argv[1:]]
        ),
    }


def report(rows: list[Row], meta: dict[str, Any]) -> str:
    """report.md: the settings, the table and the notes."""
    size = "x".join(str(s) for s in meta["input_size"])
    head = [
        "# Ours vs Torch-Pruning at 50 % MACs (L1 filter norms)"
        + (" (--quick)" if meta["quick"] else ""),
        "",
        f"`{meta['command']}` at {meta['commit'][:12]}{' (dirty)' if meta['dirty'] else ''}, "
        f"{meta['date']}; {meta['machine']} {meta['processor'] or meta['cpu']}, "
        f"{meta['threads']} threads; "
        f"torch {meta['torch']}, torchvision {meta['torchvision']}, "
        f"torch-pruning {meta['torch_pruning']}; {size} input, latency: median of "
        f"{meta['runs']} runs after {WARMUP} warm-up calls.",
        "",
        'MACs: FlopCounterMode / 2 for every network. "= masked original": the pruned network\'s '
        "output against the original's with the pruned channels switched off (random BN "
        f"statistics; yes below {MATCH:g}). prune s: ours = trace + scores + allocation + "
        "extraction; torch-pruning = dependency graph + one step at the bisected ratio. Peak "
        "memory from a second run: the Python heap (tracemalloc; tensors are outside it) and "
        "resident memory above the start.",
        "",
        table(rows),
        "",
    ]
    text = notes(rows)
    return "\n".join([*head, *([text, ""] if text else [])])


def row_dict(row: Row) -> dict[str, Any]:
    """A row as JSON."""
    d = {k: v for k, v in row.__dict__.items() if k != "extra"}
    d["input_size"] = list(row.input_size)
    d.update(row.extra)
    return d


def row_from_dict(d: dict[str, Any]) -> Row:
    """A row read back from ``results.json`` (:func:`row_dict`'s inverse)."""
    known = {f.name for f in dataclasses.fields(Row)} - {"extra"}
    row = Row(**{k: v for k, v in d.items() if k in known})
    row.input_size = (int(d["input_size"][0]), int(d["input_size"][1]))
    row.extra = {k: v for k, v in d.items() if k not in known}
    return row


# -- main ------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        help=f"torchvision classification models (default: {' '.join(MODELS)}; --quick: the first)",
    )
    parser.add_argument(
        "--allocations",
        nargs="+",
        choices=("global", "uniform"),
        default=["global"],
        help="our allocations, one row each (default: global; uniform is the same ratio for "
        "every unit, as Torch-Pruning's)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"timed runs per latency (default 20, --quick {QUICK_RUNS})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: one model, 64x64 input, fewer runs"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="results.json and report.md (default: experiments/results/vs_torch_pruning; "
        "--quick: a temporary folder)",
    )
    args = parser.parse_args()
    try:
        tp = importlib.import_module("torch_pruning")
    except ImportError:
        print(INSTALL)
        return 2
    models = list(args.models or MODELS)
    if args.quick:
        models = models[:1]
    if args.runs is None:
        args.runs = QUICK_RUNS if args.quick else 20
    size = QUICK_SIZE if args.quick else SIZE
    torch.set_num_threads(args.threads)
    default_out = (
        Path(tempfile.gettempdir()) / "vs_torch_pruning-quick"
        if args.quick
        else ROOT / "experiments/results/vs_torch_pruning"
    )
    out = Path(args.out) if args.out else default_out

    rows: list[Row] = []
    for arch in models:
        rows += bench_model(tp, arch, size, args.runs, args.allocations)
    meta = provenance(args, tp, size)
    text = report(rows, meta)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps({**meta, "rows": [row_dict(r) for r in rows]}, indent=2) + "\n"
    )
    (out / "report.md").write_text(text)
    print(f"wrote {out / 'results.json'} and {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
