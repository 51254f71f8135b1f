"""The data-flow graph of a search space and its encoding as GCN node features.

Following Chen et al. (AAAI 2021), a sub-network is presented to the predictor as a graph whose
structure is shared by the whole space and whose node features carry the widths. The graph is
the full network's data flow with every operation that is not a conv or linear layer collapsed:

* :func:`space_graph` traces the full-width skeleton with ``torch.fx`` and keeps one node per
  ``nn.Conv2d``/``nn.Linear`` module (named by module path, in forward order) plus an ``"input"``
  node for the image. An edge ``A -> B`` means that B reads, through BN, ReLU, additions,
  zero-padding shortcuts, pooling or flattening, a tensor that A wrote; so an identity shortcut
  links every conv writing into a residual stream to every conv reading from it.
* :class:`GraphEncoder` turns a batch of width assignments ``(B, U)`` (unit order =
  ``space.units``) into node features ``(B, N, F)`` with index tensors computed once per space,
  without a Python loop over the batch, and holds the normalised adjacency
  ``D^-1/2 (A + A^T + I) D^-1/2`` shared by every sub-network.

Node features, in this order (``F = 27``; names in :data:`FEATURES`):

``in_ratio``, ``out_ratio``
    width / full width of the unit that sets the input / output channels (1 for fixed channels);
``log_in_ratio``, ``log_out_ratio``
    ``log2`` of the same ratios / 8 (0 at full width; scores tend to be linear in log widths);
``log_in``, ``log_out``
    ``log2(1 + channels) / log2(1 + widest layer of the space)``, in [0, 1];
``mac_share``
    the node's share of the assignment's MACs (node MACs = ``mac_coef * c_in * c_out``, the exact
    term of :meth:`SearchSpace.macs`);
``mac_of_full``
    node MACs / MACs of the full network (summed over the nodes: the assignment's MAC ratio);
``kernel_1``, ``kernel_3``, ``kernel_7``
    kernel size one-hot (all zero for the input node);
``stride``
    ``stride - 1``;
``stage``
    stage / last stage, where the input and stem are stage 0, ``layerS`` is stage S and the
    linear head is the last stage (number of residual stages + 1);
``depth`` and ``depth_sin1`` ... ``depth_cos8``
    position in forward order / (N - 1), and its sinusoidal encoding ``sin/cos(pi k depth)`` for
    k in 1, 2, 4, 8: blocks that are otherwise alike get distinguishable embeddings, which lets
    the GCN give each unit its own weight (Kendall tau on a synthetic per-unit ranking rises from
    about 0.87 to 0.93);
``kind_input`` ... ``kind_linear``
    node kind one-hot over :data:`KINDS`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

import networkx as nx
import torch
import torch.fx
from torch import Tensor, nn

from search_spaces import SearchSpace
from search_spaces.layers import resolution_stages

KINDS = ("input", "stem", "conv", "shortcut", "linear")
KERNELS = (1, 3, 7)
DEPTH_FREQUENCIES = (1, 2, 4, 8)
FEATURES = (
    "in_ratio",
    "out_ratio",
    "log_in_ratio",
    "log_out_ratio",
    "log_in",
    "log_out",
    "mac_share",
    "mac_of_full",
    *(f"kernel_{k}" for k in KERNELS),
    "stride",
    "stage",
    "depth",
    *(f"depth_{f}{k}" for k in DEPTH_FREQUENCIES for f in ("sin", "cos")),
    *(f"kind_{k}" for k in KINDS),
)
INPUT = "input"
_STAGE = re.compile(r"^layer(\d+)\.")


@lru_cache(maxsize=64)
def space_graph(space: SearchSpace) -> nx.DiGraph:
    """The (frozen, read-only) data-flow graph of ``space``'s full network; see the module doc."""
    with torch.device("meta"):
        model = space._skeleton()
    traced = torch.fx.symbolic_trace(model)
    modules = dict(model.named_modules())
    layers = {la.name: la for la in space.layers if la.kind in ("conv", "linear")}
    sources: dict[torch.fx.Node, frozenset[str]] = {}  # fx node -> conv/linear nodes it carries
    edges: dict[str, frozenset[str]] = {}
    for node in traced.graph.nodes:
        inputs: set[str] = set()
        for arg in node.all_input_nodes:
            inputs |= sources[arg]
        if node.op == "placeholder":
            sources[node] = frozenset({INPUT})
        elif node.op == "call_module" and str(node.target) in layers:
            edges[str(node.target)] = frozenset(inputs)
            sources[node] = frozenset({str(node.target)})
        else:
            sources[node] = frozenset(inputs)
    if set(edges) != set(layers):
        raise AssertionError(f"{space.name}: traced modules differ from the layer table")
    stages = {n: int(m.group(1)) for n in edges if (m := _STAGE.match(n))}
    if not stages:  # a traced network: stages are its resolutions, from the input down
        level = resolution_stages(layers.values())
        stages = {
            n: level[la.out_pixels]
            for n, la in layers.items()
            if la.kind == "conv" and not la.reads_input
        }
    head_stage = max(stages.values(), default=0) + 1
    g = nx.DiGraph(name=space.name)
    g.add_node(
        INPUT,
        kind="input",
        kernel=0,
        stride=1,
        stage=0,
        inputs=(),
        out_unit=None,
        in_channels=space.in_channels,
        out_channels=space.in_channels,
        per_group=0,
        mac_coef=0,
    )
    for name, preds in edges.items():
        module, la = modules[name], layers[name]
        conv = isinstance(module, nn.Conv2d)
        if not conv:
            kind = "linear"
        elif "downsample" in name:
            kind = "shortcut"
        else:
            kind = "conv" if name in stages else "stem"
        g.add_node(
            name,
            kind=kind,
            kernel=int(module.kernel_size[0]) if conv else 1,
            stride=int(module.stride[0]) if conv else 1,
            stage=stages.get(name, head_stage if kind == "linear" else 0),
            inputs=la.inputs,
            out_unit=la.out_unit,
            in_channels=la.in_channels,
            out_channels=la.out_channels,
            per_group=la.in_channels // la.groups if la.groups > 1 else 0,
            mac_coef=la.kernel_area * la.out_pixels,
        )
        g.add_edges_from((p, name) for p in sorted(preds))
    return nx.freeze(g)


class GraphEncoder:
    """Node features and normalised adjacency of one space's graph (see the module doc)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        graph = space_graph(space)
        self.nodes: list[str] = list(graph.nodes)
        n = len(self.nodes)
        index = {name: i for i, name in enumerate(self.nodes)}
        a = torch.zeros(n, n, dtype=torch.float64)
        for u, v in graph.edges:
            a[index[u], index[v]] = 1.0
        a = a + a.T + torch.eye(n, dtype=torch.float64)
        d = a.sum(1).rsqrt()
        self.adjacency: Tensor = (d[:, None] * a * d[None, :]).float()
        self.output_index = index[self.nodes[-1]]  # the linear head, last in forward order

        units = {u.name: i for i, u in enumerate(space.units)}
        self._max = torch.tensor([float(u.max_width) for u in space.units], dtype=torch.float64)
        attrs = [graph.nodes[name] for name in self.nodes]
        nu = len(units)  # index ``nu`` points at a zero column: fixed channels
        # input channels = widths @ in_weights.T + in_fix (a node may read several segments)
        self._in_weights = torch.zeros(len(attrs), nu, dtype=torch.int64)
        in_fix = []
        for i, x in enumerate(attrs):
            fixed = x["in_channels"] if not x["inputs"] else 0
            for seg in x["inputs"]:
                if seg.unit is None:
                    fixed += seg.channels * seg.repeat
                else:
                    self._in_weights[i, units[seg.unit]] += seg.repeat
            in_fix.append(fixed)
        self._in_fix = torch.tensor(in_fix)
        self._in_full = torch.tensor([float(x["in_channels"]) for x in attrs])
        self._out_full = torch.tensor([float(x["out_channels"]) for x in attrs])
        self._per_group = torch.tensor([x["per_group"] for x in attrs], dtype=torch.int64)
        self._out_idx = torch.tensor([units.get(x["out_unit"], nu) for x in attrs])
        self._out_fix = torch.tensor(
            [0 if x["out_unit"] is not None else x["out_channels"] for x in attrs]
        )
        self._coef = torch.tensor([x["mac_coef"] for x in attrs], dtype=torch.int64)
        self._full_macs = float(space.macs())
        widest = max(max(x["in_channels"], x["out_channels"]) for x in attrs)
        self._log_scale = math.log2(1 + max(widest, 1))
        last_stage = max(x["stage"] for x in attrs) or 1
        static = [
            [
                *(float(x["kernel"] == k) for k in KERNELS),
                float(x["stride"] - 1),
                x["stage"] / last_stage,
                i / max(n - 1, 1),
                *_position(i / max(n - 1, 1)),
                *(float(x["kind"] == k) for k in KINDS),
            ]
            for i, x in enumerate(attrs)
        ]
        self._static = torch.tensor(static, dtype=torch.float32)
        self.num_features: int = len(FEATURES)

    @staticmethod
    def for_space(space: SearchSpace) -> GraphEncoder:
        """The encoder of ``space`` (built once per space object)."""
        return _encoder(space)

    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    def widths_tensor(self, widths: Sequence[Mapping[str, int]]) -> Tensor:
        """Dict assignments (validated by the space) as a ``(B, U)`` int64 tensor."""
        names = [u.name for u in self.space.units]
        rows = [[checked[u] for u in names] for checked in map(self.space.check_widths, widths)]
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), len(names))

    def _channels(self, widths: Tensor) -> tuple[Tensor, Tensor]:
        """Input and output channels of every node: ``(B, N)`` each, widths' dtype kept exact."""
        if widths.dim() != 2 or widths.shape[1] != len(self._max):
            raise ValueError(
                f"widths must have shape (B, {len(self._max)}) for space {self.space.name}, "
                f"got {tuple(widths.shape)}"
            )
        dtype = torch.int64 if not widths.is_floating_point() else torch.float64
        w = widths.to(dtype)
        c_in = w @ self._in_weights.to(dtype).T + self._in_fix.to(dtype)
        w = torch.cat([w, w.new_zeros(w.shape[0], 1)], 1)
        c_out = w[:, self._out_idx] + self._out_fix.to(dtype)
        return c_in, c_out

    def macs(self, widths: Tensor) -> Tensor:
        """``(B,)`` MACs of each assignment, the formula of :meth:`SearchSpace.macs`: int64 for
        integer widths (exact), float64 for real-valued ones."""
        return self.space.batched_macs(widths)

    def features(self, widths: Tensor) -> Tensor:
        """``(B, N, F)`` float32 node features of a batch of assignments ``(B, U)``."""
        c_in, c_out = (c.float() for c in self._channels(widths))
        b, n = c_in.shape
        r_in, r_out = c_in / self._in_full, c_out / self._out_full  # fixed channels: 1
        # a grouped convolution's filters read in_channels / groups channels each
        reads = torch.where(self._per_group > 0, self._per_group.float(), c_in)
        node_macs = self._coef.float() * reads * c_out
        total = node_macs.sum(1, keepdim=True).clamp_min(1.0)
        dynamic = (
            r_in,
            r_out,
            torch.log2(r_in) / 8,
            torch.log2(r_out) / 8,
            torch.log2(1 + c_in) / self._log_scale,
            torch.log2(1 + c_out) / self._log_scale,
            node_macs / total,
            node_macs / self._full_macs,
        )
        out = torch.empty(b, n, self.num_features)
        for i, column in enumerate(dynamic):
            out[..., i] = column
        out[..., len(dynamic) :] = self._static
        return out


def _position(depth: float) -> list[float]:
    """Sinusoidal encoding of a node's relative depth (sharp enough to tell blocks apart)."""
    return [f(math.pi * k * depth) for k in DEPTH_FREQUENCIES for f in (math.sin, math.cos)]


@lru_cache(maxsize=64)
def _encoder(space: SearchSpace) -> GraphEncoder:
    return GraphEncoder(space)
