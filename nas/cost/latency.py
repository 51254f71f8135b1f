"""Latency as a cost: a measured per-layer table (:class:`LatencyTable`) and the cost model that
prices width assignments from it (:class:`LatencyCost`, registered as ``latency``).

A table holds, for every distinct layer configuration a space can produce (a conv followed by
its BN and a ReLU, keyed by kernel, stride, padding, input resolution and the grids of input and
output widths it can take; the classifier as a linear layer), the median latency in
milliseconds on a grid of input x output widths (every ``step`` channels, plus 1, the
maximum and one past every multiple of the kernels' channel ``block``), measured on one
machine at one batch size and thread count (:mod:`nas.cost.timing` measures it; ``nas
latency-table`` builds it). Between grid points the latency is bilinear in the
two widths: exact at grid points, monotone between neighbours, differentiable in real-valued
widths (the search's expected widths).

A network's predicted latency is ``fixed_ms + scale * sum(layer latencies)``: the per-network
fixed cost (what no layer pays: the input, pooling, residual additions, the framework's per-call
overhead) and a scale for what isolated layers miss inside a network, both fitted on whole
networks measured at several uniform widths when the table is built.

The table records the device, its name, the thread count, the torch version and the batch; using
it anywhere else (another device, thread count, batch or space) is refused with one line, since
its numbers would not hold there.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nas.cost.base import COST_MODELS, CostModel
from nas.cost.knapsack import CostTerm
from nas.errors import ConfigError, first_line
from nas.io import write_json
from search_spaces import SearchSpace

__all__ = [
    "TABLE_FORMAT",
    "LatencyCost",
    "LatencyTable",
    "LayerEntry",
    "check_environment",
    "environment",
    "interpolate",
    "width_grid",
]

TABLE_FORMAT = "channel-nas/latency-table-1"
# what a table's latencies depend on besides the network (checked against the run's)
ENV_KEYS = ("device", "device_name", "threads", "torch", "batch", "backend", "runtime")


def width_grid(maximum: int, step: int, block: int = 0) -> list[int]:
    """The widths a table measures for a unit of ``maximum`` channels: 1, every ``step``
    channels, the maximum, and, with a ``block`` at least as wide as ``step``, one past every
    multiple of ``block``: vectorised kernels process channels in blocks, so latency climbs a
    step just past each multiple and is flat across the rest of the block."""
    points = {1, maximum, *range(step, maximum + 1, step)}
    if block > 1 and step <= block:
        points |= set(range(block + 1, maximum, block))
    return sorted(points)


def interpolate(
    grid_in: Tensor, grid_out: Tensor, ms: Tensor, c_in: Tensor, c_out: Tensor
) -> Tensor:
    """Bilinear interpolation of ``ms`` (``(len(grid_in), len(grid_out))``) at widths ``c_in``,
    ``c_out`` (broadcast together; any shape); differentiable in the widths (at a grid point:
    the slope of the cell above it; beyond the grid: the edge cell, extended linearly)."""
    c_in, c_out = torch.broadcast_tensors(c_in.double(), c_out.double())
    i, ti = _cell(grid_in, c_in)
    j, tj = _cell(grid_out, c_out)
    rows = ms.shape[1]
    flat = ms.reshape(-1)

    def at(a: Tensor, b: Tensor) -> Tensor:
        return flat[(a * rows + b).reshape(-1)].reshape(a.shape)

    i1 = (i + 1).clamp(max=ms.shape[0] - 1)
    j1 = (j + 1).clamp(max=ms.shape[1] - 1)
    return (
        at(i, j) * (1 - ti) * (1 - tj)
        + at(i1, j) * ti * (1 - tj)
        + at(i, j1) * (1 - ti) * tj
        + at(i1, j1) * ti * tj
    )


def _cell(grid: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """The grid cell of every ``x`` (index of its left point) and the position in it (0..1
    inside the grid)."""
    if len(grid) == 1:
        return torch.zeros_like(x, dtype=torch.long), torch.zeros_like(x)
    i = (torch.searchsorted(grid, x.detach().contiguous(), right=True) - 1).clamp(0, len(grid) - 2)
    left, right = grid[i], grid[i + 1]
    return i, (x - left) / (right - left)


@dataclass
class LayerEntry:
    """One layer configuration of a table and its measured grid (``ms[i][j]``: ``grid_in[i]``
    input and ``grid_out[j]`` output channels)."""

    kind: str  # "conv" (conv + BN + ReLU), "gconv" (grouped: grid_in = channels per group)
    # or "linear"
    kernel: int
    stride: int
    padding: int
    in_hw: tuple[int, int]
    grid_in: list[int]
    grid_out: list[int]
    ms: list[list[float]]
    repeat: int = 1  # a linear layer's features per input channel (a flatten of H x W)
    groups: int = 0  # gconv: the groups of a frozen layer (0: as many as c_out / c_in)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        return (
            torch.tensor(self.grid_in, dtype=torch.float64),
            torch.tensor(self.grid_out, dtype=torch.float64),
            torch.tensor(self.ms, dtype=torch.float64),
        )


@dataclass
class LatencyTable:
    """A measured latency table of one space on one machine (see the module)."""

    space: str
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    env: dict[str, Any]  # device, device_name, threads, torch, batch
    step: int
    entries: dict[str, LayerEntry] = field(default_factory=dict)
    layers: dict[str, str] = field(default_factory=dict)  # layer name -> entry key
    fixed_ms: float = 0.0
    scale: float = 1.0
    calibration: list[dict[str, float]] = field(default_factory=list)
    complete: bool = False
    block: int = 0  # grids also hold one past every multiple of it (0: none)

    # -- files --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the table as JSON, atomically (a partial one while it is built)."""
        data = {
            "format": TABLE_FORMAT,
            "space": self.space,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size),
            **self.env,
            "step": self.step,
            "block": self.block,
            "complete": self.complete,
            "fixed_ms": self.fixed_ms,
            "scale": self.scale,
            "calibration": self.calibration,
            "layers": self.layers,
            "entries": {k: {**e.__dict__, "in_hw": list(e.in_hw)} for k, e in self.entries.items()},
        }
        write_json(path, data)

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """A table written by :meth:`save`; a missing, corrupt or foreign file is one line."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"latency table not found: {p}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{p} is not a latency table ({first_line(exc)})") from None
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise ConfigError(f"{p} is not a {TABLE_FORMAT} file (build one: nas latency-table)")
        try:
            entries = {
                k: LayerEntry(**{**e, "in_hw": tuple(e["in_hw"])})
                for k, e in data["entries"].items()
            }
            return cls(
                space=str(data["space"]),
                num_classes=int(data["num_classes"]),
                in_channels=int(data["in_channels"]),
                input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
                env={
                    **{k: data[k] for k in ("device", "device_name", "threads", "torch", "batch")},
                    # tables written before --backend: eager torch
                    "backend": data.get("backend", "torch"),
                    "runtime": data.get("runtime", data["torch"]),
                },
                step=int(data["step"]),
                block=int(data.get("block", 0)),
                entries=entries,
                layers=dict(data["layers"]),
                fixed_ms=float(data["fixed_ms"]),
                scale=float(data["scale"]),
                calibration=list(data["calibration"]),
                complete=bool(data["complete"]),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"{p} is a damaged latency table ({first_line(exc)})") from None

    # -- use ------------------------------------------------------------------------------------
    def check_space(self, space: SearchSpace, source: str = "the latency table") -> None:
        """Refuse (one line) a table of another space or task, or an unfinished one."""
        mine = (self.space, self.num_classes, self.in_channels, tuple(self.input_size))
        theirs = (space.name, space.num_classes, space.in_channels, tuple(space.input_size))
        if mine != theirs:
            raise ConfigError(
                f"{source} was measured for {_task(*mine)}, not {_task(*theirs)}; build one "
                f"for it: nas latency-table --space {space.name}"
            )
        if not self.complete:
            raise ConfigError(f"{source} is unfinished: resume it with nas latency-table --resume")


def _task(name: str, classes: int, channels: int, size: tuple[int, ...]) -> str:
    return f"{name} ({channels}x{size[0]}x{size[1]}, {classes} classes)"


def environment(device: str, threads: int, batch: int, backend: str = "torch") -> dict[str, Any]:
    """What a latency depends on besides the network: device (and its name), threads, torch
    version, batch size, and the runtime that ran it (``backend``, its version)."""
    from nas.cost.runtime import backend_version

    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = platform.processor() or platform.machine()
    return {
        "device": dev.type,
        "device_name": name,
        "threads": int(threads),
        "torch": torch.__version__,
        "batch": int(batch),
        "backend": backend,
        "runtime": backend_version(backend),
    }


def check_environment(table: LatencyTable, here: Mapping[str, Any], source: str) -> None:
    """Refuse (one line) a table measured on another configuration than ``here``."""
    for key in ENV_KEYS:
        if table.env.get(key) != here.get(key):
            raise ConfigError(
                f"{source} was measured with {key} {table.env.get(key)!r}, this run has "
                f"{here.get(key)!r}: its latencies do not hold here (build a table here: nas "
                f"latency-table, with the same --device, --threads and --batch)"
            )


@COST_MODELS.register("latency", description="measured latency from a per-layer table, ms")
class LatencyCost(CostModel):
    """Predicted latency in milliseconds of one batch (the table's) from a :class:`LatencyTable`:
    ``fixed_ms + scale * sum`` of the layers' interpolated latencies."""

    name = "latency"
    unit = "ms"

    def __init__(self, space: SearchSpace, *, table: LatencyTable | None = None) -> None:
        super().__init__(space)
        if table is None:
            raise ConfigError("--cost latency needs a table: --latency-table table.json")
        table.check_space(space)
        self.table = table
        missing = [
            la.name
            for la in space.layers
            if la.kind in ("conv", "linear") and la.name not in table.layers
        ]
        if missing:
            raise ConfigError(f"the latency table has no entry for layer {missing[0]}")
        self._grids = {k: e.tensors() for k, e in table.entries.items()}

    def terms(self) -> list[CostTerm]:
        """One term per conv / linear layer (its interpolated latency over its input and output
        widths), one per input segment of a layer that reads a concatenation (below), and the
        fixed cost.

        A layer reading a concatenation of ``n`` segments (DenseNet, SqueezeNet's fire modules)
        was timed over its total input width ``C``; its latency at segment widths ``c_s`` is
        taken to first order, ``L(C) + sum_s [L(C - C_s + c_s) - L(C)]`` (``C_s`` a segment's
        full width): one term per segment, exact whenever at most one of its input units is
        narrowed and whenever the latency is linear in the input width (the bilinear grid
        between two points), so that the knapsack keeps its two-unit terms."""
        table = self.table

        def layer(key: str) -> Any:
            grid_in, grid_out, ms = self._grids[key]
            return lambda a, b: table.scale * interpolate(grid_in, grid_out, ms, a, b)

        def segment(key: str, offset: int, total: int, share: float) -> Any:
            grid_in, grid_out, ms = self._grids[key]

            def fn(a: Tensor, b: Tensor) -> Tensor:
                at = interpolate(grid_in, grid_out, ms, offset + a, b)
                full = interpolate(grid_in, grid_out, ms, torch.full_like(a, total), b)
                return table.scale * (at - share * full)

            return fn

        terms = []
        for la in self.space.layers:
            if la.kind not in ("conv", "linear"):
                continue
            key = table.layers[la.name]
            if len(la.inputs) > 1:
                total = sum(s.channels for s in la.inputs)
                share = (len(la.inputs) - 1) / len(la.inputs)
                terms += [
                    CostTerm(
                        s.unit,
                        la.out_unit,
                        s.channels,
                        la.out_channels,
                        segment(key, total - s.channels, total, share),
                    )
                    for s in la.inputs
                ]
                continue
            terms.append(
                CostTerm(
                    None if la.groups > 1 else la.inputs[0].unit,
                    la.out_unit,
                    la.in_channels // la.groups if la.groups > 1 else la.inputs[0].channels,
                    la.out_channels,
                    layer(key),
                )
            )
        fixed = table.fixed_ms
        terms.append(CostTerm(None, None, 1, 1, lambda a, b: torch.zeros_like(a) + fixed))
        return terms
