"""Channel units found by tracing: any CNN's layer table from its ``torch.fx`` graph.

:func:`discover` traces a full-width network (on the meta device), propagates shapes, and walks
the graph once per training mode, giving every tensor a *layout*: the segments its channel axis
(dim 1) is made of, each a whole unit or fixed channels. A union-find over units couples what
must be pruned together:

* a convolution or linear layer writes a new unit of its output width;
* a grouped convolution that reads as many channels per group as it writes (depthwise: one)
  writes the unit it reads: input and output are pruned together, in whole groups;
* BatchNorm, activations, pooling, dropout and spatial means pass the layout through;
* an element-wise ``add``/``mul``/``sub``/``div`` of two tensors with channels couples them
  segment by segment (residual additions, a squeeze-excitation's ``x * scale``); a broadcast
  operand (one channel, a scalar) leaves the other's layout;
* ``torch.cat`` along the channels concatenates the layouts (each input keeps its offset);
* ``flatten``/``view(N, -1)`` before a linear layer repeats every channel ``H x W`` times.

Whatever no rule follows (a reshape or transpose of the channel axis, a channel split, a grouped
convolution that changes the channels per group, an unknown module or function, a module called
twice, an element-wise product with a parameter, the network's output) **freezes** the units it
touches: they stay at full width, and the reason is kept (:class:`FrozenGroup`), never guessed.

A second check keeps the MAC formula honest: every node's multiply-adds are counted by PyTorch's
``FlopCounterMode`` and each row's formula must equal its node's count; operations outside the
table (a functional convolution, a matmul) freeze their channels and become constant terms.

Nothing here knows a registry or a name: :mod:`search_spaces.traced` makes spaces of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import _extract_tensor_metadata
from torch.utils.flop_counter import FlopCounterMode

from search_spaces.layers import FrozenGroup, Layer, Segment, Unit
from search_spaces.layouts import GraphWalk, Seg, Units

__all__ = ["Discovery", "FrozenGroup", "TraceFailure", "discover"]


class TraceFailure(Exception):
    """The network cannot be analysed; the message is one line for the user."""


@dataclass(frozen=True)
class Discovery:
    """What tracing found: the layer table, its units, what stays frozen, and the rest."""

    layers: tuple[Layer, ...]
    units: tuple[Unit, ...]
    frozen: tuple[FrozenGroup, ...]
    constant_macs: int  # multiply-adds outside the table's layers (they never change)
    constant_params: int  # parameters outside the table's layers
    input_masks: tuple[str, ...]  # layers whose input must be masked (see Supernet)


# -- counting -------------------------------------------------------------------------------------
class _Counter(torch.fx.Interpreter):
    """Runs the graph on meta tensors, recording each node's output shape (``tensor_meta``,
    as ``ShapeProp`` does) and FLOPs."""

    def __init__(self, gm: torch.fx.GraphModule, mode: FlopCounterMode) -> None:
        super().__init__(gm)
        self.mode = mode
        self.per_node: dict[str, int] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        before = self.mode.get_total_flops()
        try:
            out = super().run_node(n)
        except Exception as exc:  # the framework's error, where it happened, one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            where = f" (at {n.target})" if n.op == "call_module" else f" (at {n.name})"
            raise RuntimeError(first + where) from None
        spent = self.mode.get_total_flops() - before
        if spent:
            self.per_node[n.name] = int(spent)
        if isinstance(out, torch.Tensor):
            n.meta["tensor_meta"] = _extract_tensor_metadata(out)
        return out


def _shapes_and_flops(gm: torch.fx.GraphModule, x: torch.Tensor) -> dict[str, int]:
    """Shapes into every node's meta; FLOPs per node."""
    with FlopCounterMode(display=False) as mode, torch.no_grad():
        counter = _Counter(gm, mode)
        counter.run(x)
    return counter.per_node


# -- the entry point ------------------------------------------------------------------------------
def trace(model: nn.Module, label: str) -> torch.fx.GraphModule:
    """``torch.fx.symbolic_trace``; a failure raises :class:`TraceFailure` in one line."""
    try:
        return torch.fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many kinds (TraceError, TypeError, ...)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TraceFailure(f"cannot trace {label}: {first}") from None


def discover(
    model: nn.Module,
    in_channels: int,
    input_size: tuple[int, int],
    *,
    label: str = "the model",
) -> Discovery:
    """The layer table, units and frozen channels of ``model`` (a full-width network on the
    meta device) for inputs of ``in_channels`` x ``input_size``.

    Raises :class:`TraceFailure` (one line) when the network cannot be traced, takes other than
    one input, or does not return one ``(N, classes)`` tensor; a forward pass that fails on the
    input shape raises the framework's ``RuntimeError``.
    """
    x = torch.empty(2, in_channels, *input_size, device="meta")
    units = Units()
    walks: list[GraphWalk] = []
    graphs: list[torch.fx.GraphModule] = []
    for training in (False, True):
        model.train(training)
        gm = trace(model, label)
        _check_signature(gm, label)
        flops = _shapes_and_flops(gm, x)
        _check_output(gm, label)
        calls: dict[str, int] = {}
        for node in gm.graph.nodes:
            if node.op == "call_module":
                calls[str(node.target)] = calls.get(str(node.target), 0) + 1
        walk = GraphWalk(gm, units, flops, calls)
        walk.run()
        walks.append(walk)
        graphs.append(gm)
    model.eval()
    first, second = walks
    _agree(first, second, units)
    return _table(first, walks, units, model, x.shape[0])


def _check_signature(gm: torch.fx.GraphModule, label: str) -> None:
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise TraceFailure(f"{label} takes {len(inputs)} inputs; a search space takes one image")


def _check_output(gm: torch.fx.GraphModule, label: str) -> None:
    out = next(n for n in gm.graph.nodes if n.op == "output")
    result = out.args[0]
    meta = result.meta.get("tensor_meta") if isinstance(result, torch.fx.Node) else None
    if meta is None or not hasattr(meta, "shape") or len(meta.shape) != 2:
        raise TraceFailure(
            f"{label} must return one (batch, classes) tensor, not {_describe_output(result, meta)}"
        )


def _describe_output(result: Any, meta: Any) -> str:
    if isinstance(result, (tuple, list)):
        return f"a {type(result).__name__} of {len(result)}"
    if isinstance(result, dict):
        return "a dict"
    if meta is not None and hasattr(meta, "shape"):
        return f"a tensor of shape {tuple(meta.shape)}"
    return type(result).__name__


def _agree(first: GraphWalk, second: GraphWalk, units: Units) -> None:
    """Layers whose inputs differ between the training modes freeze (both graphs must hold)."""
    rows = {r.name: r for r in first.rows}
    for row in second.rows:
        mine = rows.get(row.name)
        if mine is None or _seg_key(mine.inputs, units) != _seg_key(row.inputs, units):
            why = f"{row.name} reads other channels in training than in evaluation"
            for s in row.inputs:
                if s.unit is not None:
                    units.freeze(s.unit, why)
            if row.out is not None:
                units.freeze(row.out, why)


def _seg_key(segs: Iterable[Seg], units: Units) -> list[tuple[int | None, int, int]]:
    return [(None if s.unit is None else units.root(s.unit), s.channels, s.repeat) for s in segs]


def _table(
    walk: GraphWalk, walks: Sequence[GraphWalk], units: Units, model: nn.Module, batch: int
) -> Discovery:
    names: dict[int, str] = {}  # live root -> unit name (its first writer)
    for row in walk.rows:
        for u in [*(s.unit for s in row.inputs), row.out]:
            if u is not None and not units.is_frozen(u):
                names.setdefault(units.root(u), units.writers[units.root(u)][0])

    def unit(u: int | None) -> str | None:
        return None if u is None or units.is_frozen(u) else names[units.root(u)]

    out_node = next(n for n in walk.gm.graph.nodes if n.op == "output")
    head = _writer_of(out_node.args[0], walk)
    layers: list[Layer] = []
    for row in walk.rows:
        m = row.module
        inputs = tuple(Segment(unit(s.unit), s.channels, s.repeat) for s in row.inputs)
        if row.kind == "bn":
            assert isinstance(m, nn.BatchNorm2d)
            single = len(inputs) == 1 and inputs[0].repeat == 1
            layers.append(
                Layer(
                    row.name,
                    "bn",
                    inputs,
                    inputs[0].unit if single else None,
                    m.num_features,
                    m.num_features,
                    1,
                    1,
                    m.affine,
                )
            )
            continue
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            c_in, c_out, area, groups = m.in_channels, m.out_channels, kh * kw, m.groups
        else:
            assert isinstance(m, nn.Linear)
            c_in, c_out, area, groups = m.in_features, m.out_features, 1, 1
        layers.append(
            Layer(
                row.name,
                "conv" if isinstance(m, nn.Conv2d) else "linear",
                inputs,
                unit(row.out),
                c_in,
                c_out,
                area,
                row.out_pixels,
                m.bias is not None,
                groups,
                row.reads_input,
                row.name == head,
            )
        )
    _guard(walk, layers, batch)
    unit_list = _units(names, units, layers)
    frozen = _frozen(units)
    table_macs = sum(t[0] * t[3] * t[4] for la in layers for t in la.mac_terms())
    table_params = sum(t[0] * t[3] * t[4] for la in layers for t in la.param_terms())
    total_macs = sum(walk.flops.values()) // (2 * batch)
    total_params = sum(p.numel() for p in model.parameters())
    masked = sorted(
        {c for w in walks for c, us in w.dirty_inputs if any(not units.is_frozen(u) for u in us)}
    )
    return Discovery(
        tuple(layers),
        unit_list,
        frozen,
        total_macs - table_macs,
        total_params - table_params,
        tuple(la.name for la in layers if la.name in masked),
    )


def _writer_of(node: Any, walk: GraphWalk) -> str | None:
    """The conv/linear layer whose output the network returns (through pass-through ops)."""
    rows = {r.name for r in walk.rows if r.kind != "bn"}
    while isinstance(node, torch.fx.Node):
        if node.op == "call_module" and str(node.target) in rows:
            return str(node.target)
        inputs = node.all_input_nodes
        if len(inputs) != 1:
            return None
        node = inputs[0]
    return None


def _guard(walk: GraphWalk, layers: Sequence[Layer], batch: int) -> None:
    """Every conv/linear row's formula equals the FLOPs PyTorch counts for its node."""
    by_target = {str(n.target): n.name for n in walk.gm.graph.nodes if n.op == "call_module"}
    for la in layers:
        if la.kind == "bn":
            continue
        counted = walk.flops.get(by_target[la.name], 0) // (2 * batch)
        formula = sum(t[0] * t[3] * t[4] for t in la.mac_terms())
        if counted != formula:
            raise AssertionError(
                f"MAC formula of {la.name} gives {formula}, FlopCounterMode {counted}"
            )


def _units(names: dict[int, str], units: Units, layers: Sequence[Layer]) -> tuple[Unit, ...]:
    reads_input = {la.out_unit for la in layers if la.reads_input and la.out_unit}
    out = []
    for root, name in names.items():
        if name in reads_input:
            kind = "stem"
        elif units.creators[root] >= 2:
            kind = "stage"
        else:
            kind = "block"
        out.append(Unit(name, units.width[root], kind, units.granularity[root]))
    return tuple(out)


def _frozen(units: Units) -> tuple[FrozenGroup, ...]:
    return tuple(
        FrozenGroup(units.width[r], tuple(units.writers[r]), why)
        for r, why in sorted(units.frozen.items())
    )
