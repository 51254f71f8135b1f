"""The space graph against the built networks, and the encoder's adjacency, features and MACs."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import networkx as nx
import pytest
import torch
from torch import nn

import search_spaces
from nas.errors import SpecError
from predictors import FEATURES, KINDS, GraphEncoder, space_graph
from tests.conftest import random_widths, small_space


def test_graph_matches_the_built_network(space_name: str) -> None:
    space = small_space(space_name)
    graph = space_graph(space)
    model = space.build(space.uniform_widths(0.0))  # all widths 1: cheap to build
    modules = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert graph.number_of_nodes() == len(modules) + 1
    assert set(graph.nodes) == {"input", *modules}
    nodes = list(graph.nodes)
    head = next(la.name for la in space.layers if la.writes_output)
    assert nodes[0] == "input" and nodes[-1] == head
    assert all(graph.in_degree(n) > 0 for n in nodes[1:]) and graph.in_degree("input") == 0
    assert nx.is_directed_acyclic_graph(graph)
    assert nx.has_path(graph, "input", head)
    assert nx.descendants(graph, "input") == set(nodes[1:])  # everything is reachable
    layers = {la.name: la for la in space.layers}
    for name in modules:
        attrs, la = graph.nodes[name], layers[name]
        assert attrs["kind"] in KINDS
        assert (attrs["inputs"], attrs["out_unit"]) == (la.inputs, la.out_unit)
        assert (attrs["in_channels"], attrs["out_channels"]) == (la.in_channels, la.out_channels)
        assert attrs["mac_coef"] == la.kernel_area * la.out_pixels
        assert attrs["kernel"] ** 2 == la.kernel_area
        assert all(nodes.index(p) < nodes.index(name) for p in graph.predecessors(name))


def test_node_attributes_of_resnet20_b() -> None:
    graph = space_graph(search_spaces.create("resnet20_b"))
    kinds = {n: graph.nodes[n]["kind"] for n in graph.nodes}
    assert kinds["input"] == "input" and kinds["conv1"] == "stem" and kinds["fc"] == "linear"
    assert kinds["layer2.0.downsample.0"] == "shortcut" and kinds["layer3.2.conv2"] == "conv"
    assert graph.nodes["layer2.0.conv1"]["stride"] == 2
    assert graph.nodes["layer2.0.downsample.0"]["kernel"] == 1
    assert [graph.nodes[n]["stage"] for n in ("input", "conv1", "layer2.1.conv1", "fc")] == [
        0,
        0,
        2,
        4,
    ]
    assert graph.nodes["input"]["mac_coef"] == 0


def _expected_edges(
    blocks: Sequence[int], convs: int, projections: set[str]
) -> set[tuple[str, str]]:
    """The data flow of a ResNet written out from its definition: ``stream`` holds the convs
    whose output the residual stream carries. A block's first conv (and its projection
    shortcut, if any) reads the whole stream; its convs read each other in a chain; after the
    block the stream carries its last conv plus the shortcut: the projection alone, or the
    incoming stream itself (identity, or option A's subsample-and-zero-pad)."""
    edges = {("input", "conv1")}
    stream = {"conv1"}
    for s, n in enumerate(blocks, start=1):
        for b in range(n):
            block = f"layer{s}.{b}"
            chain = [f"{block}.conv{i}" for i in range(1, convs + 1)]
            edges |= {(w, chain[0]) for w in stream}
            edges |= set(itertools.pairwise(chain))
            if block in projections:
                edges |= {(w, f"{block}.downsample.0") for w in stream}
                stream = {chain[-1], f"{block}.downsample.0"}
            else:
                stream = stream | {chain[-1]}
    return edges | {(w, "fc") for w in stream}


@pytest.mark.parametrize(
    ("name", "blocks", "convs", "projections"),
    [
        ("resnet20", [3, 3, 3], 2, set()),  # option A: zero-padding shortcuts, no projection
        ("resnet56", [9, 9, 9], 2, set()),
        ("resnet20_b", [3, 3, 3], 2, {"layer2.0", "layer3.0"}),  # option B: 1x1 projections
        ("resnet18", [2, 2, 2, 2], 2, {"layer2.0", "layer3.0", "layer4.0"}),  # torchvision basic
        ("resnet50", [3, 4, 6, 3], 3, {"layer1.0", "layer2.0", "layer3.0", "layer4.0"}),
    ],
)
def test_graph_edges_are_exactly_the_data_flow(
    name: str, blocks: list[int], convs: int, projections: set[str]
) -> None:
    graph = space_graph(small_space(name))
    assert set(graph.edges) == _expected_edges(blocks, convs, projections)


@pytest.mark.parametrize(
    ("name", "node", "expected"),
    [
        ("resnet20", "layer1.1.conv1", {"conv1", "layer1.0.conv2"}),  # identity shortcut
        (
            "resnet20",
            "layer2.0.conv1",
            {"conv1", "layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"},
        ),
        ("resnet20_b", "layer2.1.conv1", {"layer2.0.conv2", "layer2.0.downsample.0"}),
        ("resnet50", "layer1.0.downsample.0", {"conv1"}),
        ("resnet50", "layer1.1.conv1", {"layer1.0.conv3", "layer1.0.downsample.0"}),
        ("resnet18", "layer1.0.conv1", {"conv1"}),
        ("resnet18", "fc", {"layer4.1.conv2", "layer4.0.conv2", "layer4.0.downsample.0"}),
    ],
)
def test_shortcut_edges(name: str, node: str, expected: set[str]) -> None:
    graph = space_graph(small_space(name))
    assert set(graph.predecessors(node)) == expected


def test_graph_and_encoder_are_cached_and_frozen() -> None:
    space = search_spaces.create("resnet20")
    graph = space_graph(space)
    assert graph is space_graph(space) and nx.is_frozen(graph)
    with pytest.raises(nx.NetworkXError):
        graph.add_edge("fc", "input")
    assert GraphEncoder.for_space(space) is GraphEncoder.for_space(space)


@pytest.mark.parametrize("name", ["resnet20", "resnet20_b", "resnet18", "resnet50"])
def test_adjacency_is_the_symmetric_normalisation(name: str) -> None:
    space = small_space(name)
    encoder = GraphEncoder.for_space(space)
    adj = encoder.adjacency
    n = encoder.num_nodes
    assert adj.shape == (n, n) and adj.dtype == torch.float32
    assert torch.equal(adj, adj.T)
    assert bool((adj.diagonal() > 0).all())
    a = torch.tensor(nx.to_numpy_array(space_graph(space), nodelist=encoder.nodes))
    a = a + a.T + torch.eye(n, dtype=a.dtype)
    d = a.sum(1) ** -0.5
    manual = torch.diag(d) @ a @ torch.diag(d)
    torch.testing.assert_close(adj, manual.float())
    eig = torch.linalg.eigvalsh(adj.double())
    assert float(eig.max()) == pytest.approx(1.0, abs=1e-6)  # normalised: spectral radius 1


def test_features_shape_and_values() -> None:
    space = search_spaces.create("resnet20_b")
    encoder = GraphEncoder.for_space(space)
    widths = encoder.widths_tensor([random_widths(space, s) for s in range(5)])
    assert widths.shape == (5, len(space.units)) and widths.dtype == torch.int64
    feats = encoder.features(widths)
    assert feats.shape == (5, encoder.num_nodes, encoder.num_features) == (5, 23, len(FEATURES))
    assert feats.dtype == torch.float32 and bool(feats.isfinite().all())
    col = {f: i for i, f in enumerate(FEATURES)}
    torch.testing.assert_close(feats[..., col["mac_share"]].sum(1), torch.ones(5))
    ratio = encoder.macs(widths).double() / space.macs()
    torch.testing.assert_close(feats[..., col["mac_of_full"]].sum(1).double(), ratio)
    assert torch.equal(encoder.features(widths.float()), feats)
    rows = torch.cat([encoder.features(widths[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(rows, feats)  # batched = one by one

    full = encoder.features(encoder.widths_tensor([space.full_widths()]))[0]
    assert bool((full[:, col["in_ratio"]] == 1).all() and (full[:, col["out_ratio"]] == 1).all())
    fc, inp = encoder.nodes.index("fc"), encoder.nodes.index("input")
    assert full[fc, col["kind_linear"]] == 1 and full[inp, col["kind_input"]] == 1
    assert full[fc, col["stage"]] == 1 and full[inp, col["mac_share"]] == 0
    assert full[encoder.nodes.index("layer2.0.conv1"), col["stride"]] == 1


def test_node_macs_sum_to_the_space_macs(space_name: str) -> None:
    space = small_space(space_name)
    graph = space_graph(space)
    encoder = GraphEncoder.for_space(space)
    assignments = [random_widths(space, s) for s in range(3)] + [space.full_widths()]
    for widths in assignments:
        total = 0
        for _, x in graph.nodes(data=True):
            c_in = (
                sum((widths[s.unit] if s.unit else s.channels) * s.repeat for s in x["inputs"])
                if x["inputs"]
                else x["in_channels"]
            )
            c_out = widths[x["out_unit"]] if x["out_unit"] else x["out_channels"]
            reads = x["per_group"] or c_in  # a grouped convolution's filters read in/groups
            total += x["mac_coef"] * reads * c_out
        assert total == space.macs(widths)
    batch = encoder.widths_tensor(assignments)
    expected = [space.macs(w) for w in assignments]
    assert encoder.macs(batch).dtype == torch.int64
    assert encoder.macs(batch).tolist() == expected
    assert encoder.macs(batch.double()).tolist() == [float(m) for m in expected]


def test_bad_widths_are_refused() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    with pytest.raises(SpecError):
        encoder.widths_tensor([{**space.full_widths(), "layer1.0.conv1": 99}])
    with pytest.raises(ValueError, match="shape"):
        encoder.features(torch.ones(2, len(space.units) + 1))
    with pytest.raises(ValueError, match="shape"):
        encoder.macs(torch.ones(len(space.units)))
