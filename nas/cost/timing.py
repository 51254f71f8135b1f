"""Measuring latency: the layer configurations of a space, their timed grids, whole networks, and
the table built from them (:func:`build_table`; :func:`measure_latency_table`, what ``nas
latency-table`` runs).

Timing rules, everywhere: ``torch.inference_mode``, warm-up calls first, every sample the mean of
enough calls to last about ``min_sample_ms``, samples of the compared callables interleaved in a
seeded shuffled order per round (so drift and turbo phases hit all of them alike), the median of
``rounds`` samples; on CUDA the device is synchronised around every sample.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from nas.cost.latency import LatencyCost, LatencyTable, LayerEntry, environment, width_grid
from nas.cost.runtime import check_backend, layer_runner, network_runner
from nas.engine.config import ThreadOptions, torch_threads
from nas.errors import ConfigError
from search_spaces import SearchSpace

__all__ = [
    "auto_block",
    "auto_step",
    "build_table",
    "fit_network_cost",
    "latency_report",
    "layer_configs",
    "measure_latency_table",
    "median_ms",
    "network_latency_ms",
    "random_specs",
]

CALIBRATION_RATIOS = (1.0, 0.75, 0.5, 0.25)
CALIBRATION_RANDOM = 12  # random width assignments besides the uniform ones


def auto_step(maximum: int) -> int:
    """The grid step of a unit of ``maximum`` channels when none is given: every 4 channels up
    to 64, coarser above (about 17 grid points per unit)."""
    return max(4, 4 * math.ceil(maximum / 64))


def auto_block(device: str | torch.device) -> int:
    """The channel block of this device's convolution kernels: 16 floats per AVX-512 register
    on a CPU that has it, otherwise 8 (AVX2 registers; CUDA's tensor-core tiles)."""
    dev = torch.device(device)
    if dev.type == "cpu" and "AVX512" in torch.backends.cpu.get_cpu_capability():
        return 16
    return 8


def layer_configs(
    space: SearchSpace, step: int = 0, block: int = 0
) -> tuple[dict[str, LayerEntry], dict[str, str]]:
    """Every distinct layer configuration of ``space`` (unmeasured entries, ``ms`` empty) and
    which one each conv / linear layer is; ``step`` 0: :func:`auto_step` per unit; ``block``:
    see :func:`nas.cost.latency.width_grid` (0: none)."""
    model = space.build().eval()
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for la in space.layers:
        if la.kind in ("conv", "linear"):
            module = model.get_submodule(la.name)
            hooks.append(module.register_forward_pre_hook(_shape_hook(shapes, la.name)))
    with torch.no_grad():
        model(torch.zeros(1, space.in_channels, *space.input_size))
    for h in hooks:
        h.remove()
    entries: dict[str, LayerEntry] = {}
    layers: dict[str, str] = {}
    for la in space.layers:
        if la.kind not in ("conv", "linear"):
            continue
        module = model.get_submodule(la.name)
        seg = la.inputs[0]
        searchable_in = any(s.unit is not None for s in la.inputs)
        if len(la.inputs) > 1 and (la.groups > 1 or len({s.repeat for s in la.inputs}) > 1):
            raise ConfigError(
                f"{la.name} reads {len(la.inputs)} concatenated inputs "
                f"{'in groups' if la.groups > 1 else 'flattened unevenly'}: latency tables "
                "do not time that (use --cost macs)"
            )
        grid_out = _grid(la.out_channels, la.out_unit is not None, step, block)
        if isinstance(module, nn.Conv2d):
            k, s, p = module.kernel_size[0], module.stride[0], _padding(module.padding)
            hw = (shapes[la.name][2], shapes[la.name][3])
            if module.groups != 1:  # the coupled width: whole groups, as many as it keeps
                g = la.in_channels // la.groups
                grid_out = sorted({max(g, g * round(c / g)) for c in grid_out})
                frozen = la.out_unit is None  # its own groups (a channel multiplier, say)
                entry = LayerEntry(
                    "gconv", k, s, p, hw, [g], grid_out, [], groups=la.groups if frozen else 0
                )
            else:  # over all its input channels (a concatenation's: see LatencyCost)
                grid_in = _grid(la.in_channels, searchable_in, step, block)
                entry = LayerEntry("conv", k, s, p, hw, grid_in, grid_out, [])
        else:
            channels = sum(s.channels for s in la.inputs)
            grid_in = _grid(channels, searchable_in, step, block)
            entry = LayerEntry("linear", 1, 1, 0, (1, 1), grid_in, grid_out, [], seg.repeat)
        repeat = f" x{entry.repeat}" if entry.repeat > 1 else ""
        key = (
            f"{entry.kind} k{entry.kernel} s{entry.stride} p{entry.padding} "
            f"{entry.in_hw[0]}x{entry.in_hw[1]} in{_describe(entry.grid_in, searchable_in)}"
            f"{repeat} out{_describe(grid_out, la.out_unit is not None)}"
        )
        entries.setdefault(key, entry)
        layers[la.name] = key
    return entries, layers


def _shape_hook(shapes: dict[str, tuple[int, ...]], name: str) -> Any:
    def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        shapes[name] = tuple(args[0].shape)

    return hook


def _padding(value: Any) -> int:
    if isinstance(value, str):
        raise ConfigError(f"padding {value!r} is not timed by this table")
    return int(value[0])


def _grid(maximum: int, searchable: bool, step: int, block: int) -> list[int]:
    if not searchable:
        return [maximum]
    return width_grid(maximum, step or auto_step(maximum), block)


def _describe(grid: list[int], searchable: bool) -> str:
    return f"<={grid[-1]}/{len(grid)}" if searchable else f"={grid[0]}"


# -- timing ------------------------------------------------------------------------------------
def median_ms(
    calls: Sequence[Callable[[], Any]],
    *,
    device: torch.device,
    rounds: int = 7,
    warmup: int = 2,
    min_sample_ms: float = 2.0,
    seed: int = 0,
) -> list[float]:
    """The median latency in ms of every callable, samples interleaved (see the module)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for call in calls:
            for _ in range(warmup):
                call()
        numbers = []
        for call in calls:
            sync()
            start = time.perf_counter()
            call()
            sync()
            once = (time.perf_counter() - start) * 1e3
            numbers.append(max(1, min(200, math.ceil(min_sample_ms / max(once, 1e-4)))))
        samples: list[list[float]] = [[] for _ in calls]
        order = list(range(len(calls)))
        rng = random.Random(seed)
        for _ in range(rounds):
            rng.shuffle(order)
            for i in order:
                sync()
                start = time.perf_counter()
                for _ in range(numbers[i]):
                    calls[i]()
                sync()
                samples[i].append((time.perf_counter() - start) * 1e3 / numbers[i])
    return [sorted(s)[len(s) // 2] for s in samples]


def _measure_entry(
    entry: LayerEntry, env: dict[str, Any], device: torch.device, rounds: int, seed: int
) -> list[list[float]]:
    """The median latency of every (input, output) width of ``entry``'s grid, on the runtime,
    batch and threads of the table's environment ``env``."""
    calls = []
    for c_in in entry.grid_in:
        for c_out in entry.grid_out:
            calls.append(_layer_call(entry, c_in, c_out, env, device))
    flat = median_ms(calls, device=device, rounds=rounds, seed=seed)
    n = len(entry.grid_out)
    return [flat[i * n : (i + 1) * n] for i in range(len(entry.grid_in))]


def _layer_call(
    entry: LayerEntry, c_in: int, c_out: int, env: dict[str, Any], device: torch.device
) -> Callable[[], Any]:
    grouped = entry.kind == "gconv"  # c_in: channels per group
    return layer_runner(
        entry.kind,
        (entry.kernel, entry.stride, entry.padding, 0, entry.in_hw),
        c_in,
        c_out,
        int(env["batch"]),
        backend=str(env["backend"]),
        device=device,
        threads=int(env["threads"]),
        groups=(entry.groups or c_out // c_in) if grouped else 1,
        repeat=entry.repeat,
    )


def network_latency_ms(
    models: Sequence[nn.Module],
    input_shape: tuple[int, int, int],
    *,
    batch: int,
    device: torch.device | str,
    rounds: int = 15,
    seed: int = 0,
    backend: str = "torch",
    threads: int | None = None,
) -> list[float]:
    """The median latency (ms) of each model (eval mode) on one batch, interleaved, on
    ``backend`` (eager torch, or ONNX Runtime with ``threads`` intra-op threads)."""
    dev = torch.device(device)
    x = torch.randn(batch, *input_shape, device=dev)
    count = threads or torch.get_num_threads()
    calls = [network_runner(m, x, backend=backend, device=dev, threads=count) for m in models]
    return median_ms(calls, device=dev, rounds=rounds, seed=seed)


def random_specs(space: SearchSpace, count: int, seed: int) -> list[dict[str, int]]:
    """``count`` width assignments, every unit's width uniform in [max/8, max] (seeded), in
    whole groups where a grouped convolution reads the unit."""
    rng = random.Random(seed)
    return [
        {
            u.name: u.granularity
            * rng.randint(max(1, u.max_width // 8 // u.granularity), u.max_width // u.granularity)
            for u in space.units
        }
        for _ in range(count)
    ]


def fit_network_cost(layer_sums: Sequence[float], measured: Sequence[float]) -> tuple[float, float]:
    """``(fixed_ms, scale)`` of ``measured ~ fixed_ms + scale * layer_sum`` (least squares; a
    negative fixed cost is clipped to 0 and the scale refitted through the origin)."""
    n = len(layer_sums)
    mx, my = sum(layer_sums) / n, sum(measured) / n
    sxx = sum((x - mx) ** 2 for x in layer_sums)
    scale = sum((x - mx) * (y - my) for x, y in zip(layer_sums, measured, strict=True)) / sxx
    fixed = my - scale * mx
    if fixed < 0 or scale <= 0:
        fixed = 0.0
        scale = sum(x * y for x, y in zip(layer_sums, measured, strict=True)) / sum(
            x * x for x in layer_sums
        )
    return fixed, scale


# -- the table ---------------------------------------------------------------------------------
def build_table(
    space: SearchSpace,
    out: Path,
    *,
    batch: int,
    device: str = "cpu",
    step: int = 0,
    block: int | None = None,
    rounds: int = 7,
    resume: bool = False,
    progress: bool = True,
    backend: str = "torch",
) -> LatencyTable:
    """Measure every layer configuration of ``space`` on ``backend`` and fit the per-network
    cost on whole networks, writing ``out`` after every configuration (``resume`` continues a
    partial one); ``block`` None: :func:`auto_block`."""
    dev = torch.device(device)
    block = auto_block(dev) if block is None else block
    env = environment(device, torch.get_num_threads(), batch, backend)
    entries, layers = layer_configs(space, step, block)
    table = LatencyTable(
        space.name, space.num_classes, space.in_channels, space.input_size, env, step, block=block
    )
    if resume and out.is_file():
        table = _resumable(LatencyTable.load(out), table, out)
    table.layers = layers
    todo = [k for k in entries if k not in table.entries]
    with tqdm(
        total=len(entries) + 1,
        initial=len(entries) - len(todo),
        desc="latency table",
        unit="layer",
        file=sys.stderr,
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        for i, key in enumerate(todo):
            entry = entries[key]
            entry.ms = _measure_entry(entry, table.env, dev, rounds, seed=i)
            table.entries[key] = entry
            table.save(out)
            bar.update(1)
        _calibrate(table, space, dev, batch)
        table.complete = True
        table.save(out)
        bar.update(1)
    return table


def measure_latency_table(
    space: SearchSpace,
    out: str | Path,
    *,
    batch: int = 16,
    device: str = "cpu",
    step: int = 0,
    block: int | None = None,
    rounds: int = 7,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    threads: int | None = None,
    backend: str = "torch",
) -> LatencyTable:
    """The latency table of ``space`` on this machine, written to ``out`` (what ``nas
    latency-table`` runs): :func:`build_table` at ``threads`` torch threads (default: the cores
    this process may use), after refusing an existing ``out`` (unless ``resume`` continues it or
    ``overwrite`` replaces it) and a CUDA device this machine lacks."""
    path = Path(out)
    if path.exists() and not (resume or overwrite):
        raise ConfigError(
            f"{path} exists: pass --resume to continue it or --overwrite to replace it"
        )
    if resume and overwrite:
        raise ConfigError(
            "--resume continues the table at --out, --overwrite replaces it: pick one"
        )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device here")
    check_backend(backend, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch_threads(ThreadOptions(threads=threads).thread_count()):
        return build_table(
            space,
            path,
            batch=batch,
            device=device,
            step=step,
            block=block,
            rounds=rounds,
            resume=resume,
            progress=progress,
            backend=backend,
        )


def _resumable(found: LatencyTable, fresh: LatencyTable, out: Path) -> LatencyTable:
    same = (found.space, found.num_classes, found.in_channels, tuple(found.input_size))
    wanted = (fresh.space, fresh.num_classes, fresh.in_channels, tuple(fresh.input_size))
    grid, fresh_grid = (found.step, found.block), (fresh.step, fresh.block)
    if same != wanted or found.env != fresh.env or grid != fresh_grid:
        raise ConfigError(
            f"--resume: {out} was measured with other settings ({found.space}, step "
            f"{found.step}, block {found.block}, {found.env}); use another --out or the same "
            "options"
        )
    found.complete = False
    return found


def _calibrate(table: LatencyTable, space: SearchSpace, device: torch.device, batch: int) -> None:
    """``fixed_ms`` and ``scale`` from whole networks (uniform widths and random ones)."""
    specs = [space.uniform_widths_for_macs(r) for r in CALIBRATION_RATIOS]
    specs += random_specs(space, CALIBRATION_RANDOM, seed=12345)
    table.fixed_ms, table.scale = 0.0, 1.0
    table.complete = True  # the layer grids are: the layer sum can be read
    raw = LatencyCost(space, table=table)
    sums = [raw.exact(w) for w in specs]
    measured = network_latency_ms(
        [space.build(w) for w in specs],
        (space.in_channels, *space.input_size),
        batch=batch,
        device=device,
        backend=str(table.env["backend"]),
        threads=int(table.env["threads"]),
    )
    table.fixed_ms, table.scale = fit_network_cost(sums, measured)
    table.calibration = [
        {"layer_sum_ms": s, "measured_ms": m} for s, m in zip(sums, measured, strict=True)
    ]


def latency_report(
    cost: LatencyCost, widths: dict[str, int], *, rounds: int = 15
) -> dict[str, float]:
    """Predicted and measured latency (ms, at the table's batch and device, this process's
    threads) of the network of ``widths`` beside the full network's, and their ratios."""
    space = cost.space
    table = cost.table
    full, found = network_latency_ms(
        [space.build(), space.build(widths)],
        (space.in_channels, *space.input_size),
        batch=int(table.env["batch"]),
        device=str(table.env["device"]),
        rounds=rounds,
        backend=str(table.env["backend"]),
        threads=int(table.env["threads"]),
    )
    predicted, predicted_full = cost.exact(widths), cost.full()
    return {
        "latency_ms": found,
        "full_latency_ms": full,
        "latency_ratio": found / full,
        "predicted_latency_ms": predicted,
        "predicted_latency_ratio": predicted / predicted_full,
        "latency_prediction_error": predicted / found - 1,
        "latency_batch": int(table.env["batch"]),
    }
