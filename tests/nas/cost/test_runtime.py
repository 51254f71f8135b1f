"""nas.cost.runtime: what a latency table times on ONNX Runtime computes what the layer and the
network compute in PyTorch (the timed graphs are the real ones, not stand-ins)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import search_spaces
from nas.cost.runtime import _layer_graph, _session, layer_runner, network_runner
from nas.errors import ConfigError

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


@pytest.mark.parametrize(
    ("kind", "groups", "c_in", "c_out"), [("conv", 1, 5, 7), ("gconv", 6, 1, 6), ("gconv", 2, 3, 4)]
)
def test_a_timed_layer_graph_computes_the_layer(
    kind: str, groups: int, c_in: int, c_out: int
) -> None:
    torch.manual_seed(0)
    channels = groups * c_in if kind == "gconv" else c_in
    module = nn.Sequential(
        nn.Conv2d(channels, c_out, 3, 2, 1, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )
    bn = module[1]
    assert isinstance(bn, nn.BatchNorm2d)
    assert bn.running_mean is not None and bn.running_var is not None
    with torch.no_grad():  # statistics and scales that BN folding must get right
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    module.eval()
    x = torch.randn(3, channels, 9, 9)
    session = _session(_layer_graph(module, x), 1)
    (got,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), module(x), atol=1e-5)


def test_a_timed_linear_graph_computes_the_layer() -> None:
    module = nn.Linear(12, 5).eval()
    x = torch.randn(4, 12)
    (got,) = _session(_layer_graph(module, x), 1).run(None, {"x": x.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(got), module(x), atol=1e-5)


def test_runners_of_both_backends_run_the_same_network() -> None:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=3, input_size=(8, 8))
    model = space.build(space.uniform_widths(0.5)).eval()
    x = torch.randn(2, 3, 8, 8)
    cpu = torch.device("cpu")
    eager = network_runner(model, x, backend="torch", device=cpu, threads=1)()
    (ort,) = network_runner(model, x, backend="onnxruntime", device=cpu, threads=1)()
    assert torch.allclose(torch.from_numpy(ort), eager.detach(), atol=1e-4)
    run = layer_runner(
        "conv", (3, 1, 1, 0, (8, 8)), 4, 6, 2, backend="onnxruntime", device=cpu, threads=1
    )
    (y,) = run()
    assert y.shape == (2, 6, 8, 8)


def test_onnx_runtime_times_its_cpu_provider_only() -> None:
    from nas.cost.runtime import check_backend

    with pytest.raises(ConfigError, match="--device cpu"):
        check_backend("onnxruntime", "cuda")
    with pytest.raises(ConfigError, match="unknown --backend"):
        check_backend("tvm", "cpu")
