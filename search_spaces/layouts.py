"""The rules of channel tracing: a layout per tensor and a union-find over channel units.

:class:`GraphWalk` walks one ``torch.fx`` graph (shapes already propagated) and gives every
tensor-valued node a *layout*, the segments its channel axis is made of (:class:`Seg`: a whole
unit or fixed channels), adding couplings and frozen units to a shared :class:`Units`.
:mod:`search_spaces.discover` runs it in both training modes and turns the result into a layer
table. The rules are listed in :mod:`search_spaces.discover`'s docstring.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import nn

__all__ = ["GraphWalk", "Row", "Seg", "Units"]

F = torch.nn.functional

# modules and functions that keep every channel where it is; those mapping 0 to 0 keep a
# channel that is switched off at zero ("clean"), the others (sigmoid) do not
_ZERO_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardswish,
    nn.SiLU,
    nn.GELU,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
    nn.Tanh,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.Upsample,
)
_DIRTY_MODULES: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Hardsigmoid, nn.AlphaDropout)
_ZERO_FUNCTIONS: set[Any] = {
    torch.relu,
    torch.relu_,
    F.relu,
    F.relu6,
    F.hardswish,
    F.silu,
    F.gelu,
    F.leaky_relu,
    F.elu,
    F.mish,
    torch.tanh,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    F.max_pool2d,
    F.avg_pool2d,
    F.dropout,
    F.dropout2d,
    F.interpolate,
}
_DIRTY_FUNCTIONS: set[Any] = {torch.sigmoid, F.sigmoid, F.hardsigmoid, F.hardtanh}
_ZERO_METHODS = {"relu", "relu_", "contiguous", "clone", "tanh", "detach"}
_DIRTY_METHODS = {"sigmoid", "sigmoid_"}
_ADD = {operator.add, operator.iadd, operator.sub, operator.isub, torch.add, torch.sub}
_MUL = {operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul, torch.div}
_ADD_METHODS = {"add", "add_", "sub", "sub_"}
_DIVIDE = {operator.truediv, operator.itruediv, torch.div, "div", "div_"}
_IN_PLACE = {operator.iadd, operator.isub, operator.imul, operator.itruediv}
# what may read a tensor without its values mattering to the channels (sizes, shapes)
_INTROSPECT = {"size", "dim", "numel", getattr, operator.getitem}
_MUL_METHODS = {"mul", "mul_", "div", "div_"}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_REDUCE_METHODS = {"mean", "sum", "amax"}

try:  # torchvision's stochastic depth is a leaf function under fx (per-sample scaling)
    from torchvision.ops.stochastic_depth import stochastic_depth as _stochastic_depth

    _ZERO_FUNCTIONS.add(_stochastic_depth)
except ImportError:  # pragma: no cover - torchvision is a dependency
    pass


# -- the union-find over units --------------------------------------------------------------------
@dataclass
class Units:
    parent: list[int] = field(default_factory=list)
    width: list[int] = field(default_factory=list)
    granularity: list[int] = field(default_factory=list)
    writers: list[list[str]] = field(default_factory=list)
    creators: list[int] = field(default_factory=list)  # writers that are not grouped pass-throughs
    frozen: dict[int, str] = field(default_factory=dict)
    by_writer: dict[str, int] = field(default_factory=dict)

    def new(self, width: int, writer: str) -> int:
        if writer in self.by_writer:  # the second graph (other training mode) meets it again
            return self.by_writer[writer]
        i = len(self.parent)
        self.parent.append(i)
        self.width.append(width)
        self.granularity.append(1)
        self.writers.append([writer])
        self.creators.append(1)
        self.by_writer[writer] = i
        return i

    def root(self, u: int) -> int:
        while self.parent[u] != u:
            self.parent[u] = self.parent[self.parent[u]]
            u = self.parent[u]
        return u

    def union(self, a: int, b: int, why: str) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra == rb:
            return
        if self.width[ra] != self.width[rb]:  # pragma: no cover - shapes already agree
            self.freeze(ra, why)
            self.freeze(rb, why)
            return
        ra, rb = min(ra, rb), max(ra, rb)
        self.parent[rb] = ra
        self.granularity[ra] = math.lcm(self.granularity[ra], self.granularity[rb])
        self.writers[ra] += self.writers[rb]
        self.creators[ra] += self.creators[rb]
        reason = self.frozen.get(ra) or self.frozen.pop(rb, None)
        self.frozen.pop(rb, None)
        if reason:
            self.frozen[ra] = reason

    def freeze(self, u: int, why: str) -> None:
        self.frozen.setdefault(self.root(u), why)

    def is_frozen(self, u: int) -> bool:
        return self.root(u) in self.frozen


@dataclass(frozen=True)
class Seg:
    unit: int | None  # None: fixed channels
    channels: int
    repeat: int = 1
    clean: bool = True  # a switched-off channel is exactly zero here
    data: bool = False  # the network's input channels


Layout = list[Seg]


@dataclass
class Row:
    name: str
    kind: str
    inputs: tuple[Seg, ...]
    out: int | None
    module: nn.Module
    out_pixels: int
    reads_input: bool


# -- the walk -------------------------------------------------------------------------------------
class GraphWalk:
    """One pass over one graph (one training mode), adding to a shared union-find."""

    def __init__(
        self,
        gm: torch.fx.GraphModule,
        units: Units,
        flops: dict[str, int],
        calls: dict[str, int],
    ) -> None:
        self.gm = gm
        self.units = units
        self.flops = flops
        self.calls = calls
        self.modules = dict(gm.named_modules())
        self.layouts: dict[torch.fx.Node, Any] = {}
        self.rows: list[Row] = []
        self.dirty_inputs: list[tuple[str, list[int]]] = []  # consumer, units read unmasked
        self.constant_nodes: list[str] = []

    # helpers
    def shape(self, node: Any) -> tuple[int, ...] | None:
        if not isinstance(node, torch.fx.Node):
            return None
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def layout(self, node: Any) -> Layout | None:
        got = self.layouts.get(node) if isinstance(node, torch.fx.Node) else None
        return got if isinstance(got, list) else None

    def where(self, node: torch.fx.Node) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        path = next(reversed(stack.values()), None) if stack else None
        if isinstance(path, tuple):
            path = path[0]
        return f" at {path}" if path else ""

    def freeze(self, layout: Any, why: str) -> None:
        if isinstance(layout, list):
            for s in layout:
                if s.unit is not None:
                    self.units.freeze(s.unit, why)

    def fixed(self, node: torch.fx.Node, clean: bool = False) -> Layout | str:
        s = self.shape(node)
        if s is None:
            return "other"
        return [Seg(None, s[1] if len(s) >= 2 else 1, 1, clean)]

    def opaque(self, node: torch.fx.Node, what: str) -> Layout | str:
        """Freeze the channels of every tensor this node reads; its output is fixed."""
        why = f"{what}{self.where(node)}"
        for arg in node.all_input_nodes:
            self.freeze(self.layouts.get(arg), why)
        return self.fixed(node)

    # the walk
    def run(self) -> None:
        # a table layer's parameters read elsewhere (F.conv2d(x, self.conv.weight)): the layer
        # cannot be cut, so it is treated as a module called twice
        for node in self.gm.graph.nodes:
            if node.op == "get_attr":
                owner = str(node.target).rpartition(".")[0]
                if owner in self.calls:
                    self.calls[owner] += 1
        for node in self.gm.graph.nodes:
            self.layouts[node] = self.visit(node)
            target = node.target
            in_place = target in _IN_PLACE or (
                node.op == "call_method" and isinstance(target, str) and target.endswith("_")
            )
            if in_place and node.args and isinstance(node.args[0], torch.fx.Node):
                self.layouts[node.args[0]] = self.layouts[node]  # later readers see the result

    def visit(self, node: torch.fx.Node) -> Any:
        op = node.op
        if op == "placeholder":
            s = self.shape(node)
            return [Seg(None, s[1], 1, True, True)] if s and len(s) >= 2 else "other"
        if op == "get_attr":
            return "param"
        if op == "output":
            for arg in node.all_input_nodes:
                self.freeze(self.layouts.get(arg), "network output")
            return None
        if op == "call_module":
            return self.module(node, self.modules[str(node.target)])
        if self.shape(node) is None:  # sizes, ints, or a tuple of tensors (max, unbind, split)
            reads = any(isinstance(self.layouts.get(a), list) for a in node.all_input_nodes)
            if reads and node.target not in _INTROSPECT:
                name = getattr(node.target, "__name__", node.target)
                return self.opaque(node, f"{name} returns several tensors")
            return "other"
        if node.all_input_nodes and all(
            self.layouts.get(a) == "param" for a in node.all_input_nodes
        ):
            return "param"  # computed from parameters and constants alone
        return self.function(node)

    def module(self, node: torch.fx.Node, m: nn.Module) -> Any:
        path = str(node.target)
        src = self.layout(node.args[0]) if node.args else None
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and self.calls[path] > 1:
            self.constant_nodes.append(node.name)
            return self.opaque(node, f"{path} is called {self.calls[path]} times")
        if isinstance(m, nn.Conv2d) and src is not None:
            return self.conv(node, m, src)
        if isinstance(m, nn.Linear) and src is not None:
            return self.linear(node, m, src)
        if isinstance(m, nn.BatchNorm2d) and src is not None:
            self.rows.append(Row(path, "bn", tuple(src), None, m, 1, False))
            return [Seg(s.unit, s.channels, s.repeat, True, s.data) for s in src]
        if isinstance(m, nn.Hardtanh) and src is not None and m.min_val <= 0 <= m.max_val:
            return src  # ReLU6 too; a range without 0 moves 0 (below: dirty)
        if isinstance(m, _ZERO_MODULES) and src is not None:
            return src
        if isinstance(m, (*_DIRTY_MODULES, nn.Hardtanh)) and src is not None:
            return [Seg(s.unit, s.channels, s.repeat, False, s.data) for s in src]
        if isinstance(m, nn.Flatten) and src is not None:
            return self.flatten(node, src, m.start_dim, m.end_dim)
        return self.opaque(node, f"{type(m).__name__} {path} is not a rule")

    def conv(self, node: torch.fx.Node, m: nn.Conv2d, src: Layout) -> Any:
        path = str(node.target)
        shape = self.shape(node)
        assert shape is not None
        pixels = int(shape[2] * shape[3])
        per_in, per_out = m.in_channels // m.groups, m.out_channels // m.groups
        data = any(s.data for s in src)
        if m.groups == 1:
            u = self.units.new(m.out_channels, path)
            self.read(path, src)
            self.rows.append(Row(path, "conv", tuple(src), u, m, pixels, data))
            return [Seg(u, m.out_channels, 1, False)]
        whole = len(src) == 1 and src[0].unit is not None and src[0].repeat == 1
        if per_in == per_out and whole:
            unit = src[0].unit
            assert unit is not None
            r = self.units.root(unit)
            self.units.granularity[r] = math.lcm(self.units.granularity[r], per_in)
            if path not in self.units.writers[r]:
                self.units.writers[r].append(path)
            self.read(path, src)
            self.rows.append(Row(path, "conv", tuple(src), unit, m, pixels, data))
            return [Seg(unit, m.out_channels, 1, src[0].clean and m.bias is None)]
        why = (
            f"grouped conv {path} reads {per_in} and writes {per_out} channels per group"
            if per_in != per_out
            else f"grouped conv {path} reads fixed channels or several segments"
        )
        self.freeze(src, why)
        u = self.units.new(m.out_channels, path)
        self.units.freeze(u, why)
        self.rows.append(Row(path, "conv", tuple(src), u, m, pixels, data))
        return [Seg(u, m.out_channels, 1, False)]

    def linear(self, node: torch.fx.Node, m: nn.Linear, src: Layout) -> Any:
        path = str(node.target)
        shape = self.shape(node)
        in_shape = self.shape(node.args[0])
        assert shape is not None and in_shape is not None
        u = self.units.new(m.out_features, path)
        if len(in_shape) != 2:  # channel-last features (ConvNeXt): not followed
            why = f"linear {path} reads a {len(in_shape)}-D tensor"
            self.freeze(src, why)
            self.units.freeze(u, why)
            pixels = math.prod(shape[1:-1])
            fixed = (Seg(None, m.in_features),)
            self.rows.append(Row(path, "linear", fixed, u, m, pixels, False))
            return self.fixed(node)
        self.read(path, src)
        self.rows.append(Row(path, "linear", tuple(src), u, m, 1, any(s.data for s in src)))
        return [Seg(u, m.out_features, 1, False)]

    def read(self, consumer: str, src: Layout) -> None:
        dirty = [s.unit for s in src if s.unit is not None and not s.clean]
        if dirty:
            self.dirty_inputs.append((consumer, dirty))

    def flatten(self, node: torch.fx.Node, src: Layout, start: int, end: int = -1) -> Any:
        in_shape = self.shape(node.args[0])
        out_shape = self.shape(node)
        if in_shape is None or out_shape is None:
            return self.opaque(node, "flatten")
        ndim = len(in_shape)
        if start % ndim == 1 and end % ndim == ndim - 1:
            repeat = math.prod(in_shape[2:])
            return [Seg(s.unit, s.channels, s.repeat * repeat, s.clean, s.data) for s in src]
        if start % ndim >= 2:  # flattens the spatial axes only: channels stay on dim 1
            return src
        return self.opaque(node, "flatten moves the channel axis")

    def function(self, node: torch.fx.Node) -> Any:
        t, args, op = node.target, node.args, node.op
        method = op == "call_method"
        src = self.layout(args[0]) if args else None
        name = t if isinstance(t, str) else getattr(t, "__name__", str(t))
        if self.flops.get(node.name, 0) > 0:  # a convolution or product outside the table
            self.constant_nodes.append(node.name)
            return self.opaque(node, f"{name} computes outside the layer table")
        if src is not None and (t in _ZERO_FUNCTIONS or (method and t in _ZERO_METHODS)):
            return src
        if src is not None and (t in _DIRTY_FUNCTIONS or (method and t in _DIRTY_METHODS)):
            return [Seg(s.unit, s.channels, s.repeat, False, s.data) for s in src]
        if t in _ADD or (method and t in _ADD_METHODS):
            return self.binary(node, add=True)
        if t in _MUL or (method and t in _MUL_METHODS):
            return self.binary(node, add=False)
        if t is torch.cat:
            return self.cat(node)
        if (t is torch.flatten or (method and t in _FLATTEN_METHODS)) and src is not None:
            return self.reshape(node, src)
        if (t in (torch.mean, torch.sum, torch.amax) or (method and t in _REDUCE_METHODS)) and (
            src is not None
        ):
            return self.reduce(node, src)
        return self.opaque(node, f"{name} is not a rule")

    def reshape(self, node: torch.fx.Node, src: Layout) -> Any:
        in_shape, out_shape = self.shape(node.args[0]), self.shape(node)
        if in_shape is None or out_shape is None:
            return self.opaque(node, "reshape")
        if in_shape == out_shape:
            return src
        if len(out_shape) == 2 and out_shape[0] == in_shape[0] and len(in_shape) >= 2:
            return self.flatten(node, src, 1, -1)
        return self.opaque(node, f"{node.target} reshapes the channel axis")

    def reduce(self, node: torch.fx.Node, src: Layout) -> Any:
        in_shape = self.shape(node.args[0])
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        if in_shape is None or dims is None:
            return self.opaque(node, f"{node.target} over every axis")
        dims = [dims] if isinstance(dims, int) else list(dims)  # type: ignore[arg-type]
        ndim = len(in_shape)
        if all(isinstance(d, int) and d % ndim >= 2 for d in dims):
            return src
        return self.opaque(node, f"{node.target} over the channel axis")

    def binary(self, node: torch.fx.Node, add: bool) -> Any:
        a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        out_shape = self.shape(node)
        assert out_shape is not None
        ndim = len(out_shape)
        what = f"{getattr(node.target, '__name__', node.target)}{self.where(node)}"
        la = self.layouts.get(a) if isinstance(a, torch.fx.Node) else None
        lb = self.layouts.get(b) if isinstance(b, torch.fx.Node) else None

        def extent(x: Any) -> int:
            """``x``'s size along the output's channel axis (shapes align from the right)."""
            shape = self.shape(x)
            if shape is None or ndim < 2:
                return 1
            k = len(shape) - (ndim - 1)
            return shape[k] if k >= 0 else 1

        for lay, x in ((la, a), (lb, b)):
            shape = self.shape(x)
            if isinstance(lay, list) and (shape is None or len(shape) != ndim):
                return self.opaque(node, f"{what} broadcasts the channel axis elsewhere")
        if node.target in _DIVIDE and isinstance(lb, list) and extent(b) > 1:
            self.freeze(lb, f"division by channels: {what}")  # 0 / 0 is not 0
        ea, eb = extent(a), extent(b)
        if isinstance(la, list) and eb == 1:  # b: a number, or one value per image / position
            return self._dirty(la) if add and b != 0 else la
        if isinstance(lb, list) and ea == 1:
            return self._dirty(lb) if add or node.target in _DIVIDE else lb
        if isinstance(la, list) and isinstance(lb, list):
            if len(la) == len(lb) and all(
                x.channels == y.channels and x.repeat == y.repeat
                for x, y in zip(la, lb, strict=True)
            ):
                out = []
                for x, y in zip(la, lb, strict=True):
                    if x.unit is not None and y.unit is not None:
                        self.units.union(x.unit, y.unit, what)
                    elif x.unit is not None or y.unit is not None:
                        self.freeze([x, y], f"{what} with fixed channels")
                    clean = (x.clean and y.clean) if add else (x.clean or y.clean)
                    out.append(Seg(x.unit, x.channels, x.repeat, clean, x.data or y.data))
                return out
            why = f"{what} of differently split channels"
            self.freeze(la, why)
            self.freeze(lb, why)
            return self.fixed(node)
        # a tensor with channels against a parameter or a constant with channels (layer scale)
        for lay in (la, lb):
            self.freeze(lay, f"{what} with a parameter tensor")
        return self._dirty(la if isinstance(la, list) else lb) if (la or lb) else "other"

    @staticmethod
    def _dirty(layout: Any) -> Any:
        if not isinstance(layout, list):
            return layout
        return [Seg(s.unit, s.channels, s.repeat, False, s.data) for s in layout]

    def cat(self, node: torch.fx.Node) -> Any:
        parts = node.args[0]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        out_shape = self.shape(node)
        assert isinstance(parts, (list, tuple)) and out_shape is not None
        layouts = [self.layout(p) for p in parts]
        if (
            isinstance(dim, int)
            and dim % len(out_shape) == 1
            and all(x is not None for x in layouts)
        ):
            return [s for x in layouts if x is not None for s in x]
        return self.opaque(node, f"cat along dim {dim}")
