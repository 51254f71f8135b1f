"""The runtimes a latency is measured on (``--backend``): ``torch`` (eager PyTorch, the default)
and ``onnxruntime`` (ONNX Runtime's CPU provider, as the network is deployed from
``model.onnx``).

:func:`layer_runner` gives a callable that runs one layer configuration of a latency table (a
convolution with its BN and ReLU, a grouped one, a linear layer) at given widths; on ONNX Runtime
the layer is written directly as a small ONNX graph (milliseconds, where the exporter takes
seconds), weights random. :func:`network_runner` runs a whole network; on ONNX Runtime it is
exported by :func:`onnx_bytes` (the exporter ``model.onnx`` is written with). Sessions use the
table's thread count (``intra_op_num_threads``; one inter-op thread) and full graph
optimisation.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nas.errors import ConfigError, first_line, require_extra

__all__ = [
    "BACKENDS",
    "ONNX_PACKAGES",
    "backend_version",
    "check_backend",
    "layer_runner",
    "network_runner",
    "onnx_bytes",
    "onnx_program",
]

BACKENDS = ("torch", "onnxruntime")
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the onnx extra


def check_backend(backend: str, device: torch.device | str) -> None:
    """Refuse (one line) an unknown backend, ONNX Runtime without its extra, or ONNX Runtime
    on a CUDA device (its CPU provider is what is timed)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown --backend {backend!r} (choose from {', '.join(BACKENDS)})")
    if backend == "onnxruntime":
        require_extra(ONNX_PACKAGES, "onnx", "--backend onnxruntime")
        if torch.device(device).type != "cpu":
            raise ConfigError(
                "--backend onnxruntime times ONNX Runtime's CPU provider: --device cpu"
            )


def backend_version(backend: str) -> str:
    """The runtime's version (recorded in a latency table's environment)."""
    if backend == "onnxruntime":
        import onnxruntime

        return str(onnxruntime.__version__)
    return str(torch.__version__)


def _session(model_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _run(session: Any, x: torch.Tensor) -> Callable[[], Any]:
    name = session.get_inputs()[0].name
    feed = {name: x.numpy()}
    return lambda: session.run(None, feed)


def layer_runner(
    kind: str,
    shape: tuple[int, int, int, int, tuple[int, int]],
    c_in: int,
    c_out: int,
    batch: int,
    *,
    backend: str,
    device: torch.device,
    threads: int,
    groups: int = 1,
    repeat: int = 1,
) -> Callable[[], Any]:
    """A callable running one layer: ``kind`` ``conv`` (conv + BN + ReLU), ``gconv`` (the same,
    ``groups`` groups of ``c_in`` channels) or ``linear`` (``c_in * repeat`` features);
    ``shape`` = (kernel, stride, padding, unused, input H x W)."""
    kernel, stride, padding, _, hw = shape
    channels = groups * c_in if kind == "gconv" else c_in
    module: nn.Module
    if kind in ("conv", "gconv"):
        module = nn.Sequential(
            nn.Conv2d(channels, c_out, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )
        x = torch.randn(batch, channels, *hw)
    else:
        module = nn.Linear(c_in * repeat, c_out)
        x = torch.randn(batch, c_in * repeat)
    if backend == "torch":
        net = module.to(device).eval()
        xd = x.to(device)
        return lambda: net(xd)
    return _run(_session(_layer_graph(module.eval(), x), threads), x)


def _layer_graph(module: nn.Module, x: torch.Tensor) -> bytes:
    """``module`` (a conv + BN + ReLU or a linear layer, eval mode) as an ONNX graph written
    directly: Conv (BN folded into its weights and bias, as ONNX Runtime's optimiser would) and
    Relu, or Gemm."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    with torch.no_grad():
        out_shape = module(x).shape

    if isinstance(module, nn.Sequential):
        conv, bn = module[0], module[1]
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        assert bn.running_var is not None and bn.running_mean is not None
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = (conv.weight * scale[:, None, None, None]).detach()
        b = (bn.bias - bn.running_mean * scale).detach()
        nodes = [
            helper.make_node(
                "Conv",
                ["x", "w", "b"],
                ["y"],
                kernel_shape=list(conv.kernel_size),
                strides=list(conv.stride),
                pads=[int(conv.padding[0])] * 4,
                group=conv.groups,
            ),
            helper.make_node("Relu", ["y"], ["out"]),
        ]
        inits = [numpy_helper.from_array(w.numpy(), "w"), numpy_helper.from_array(b.numpy(), "b")]
    else:
        assert isinstance(module, nn.Linear) and module.bias is not None
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["out"], transB=1)]
        inits = [
            numpy_helper.from_array(module.weight.detach().numpy(), "w"),
            numpy_helper.from_array(module.bias.detach().numpy(), "b"),
        ]
    graph = helper.make_graph(
        nodes,
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, list(out_shape))],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def network_runner(
    model: nn.Module,
    x: torch.Tensor,
    *,
    backend: str,
    device: torch.device,
    threads: int,
) -> Callable[[], Any]:
    """A callable running the whole network ``model`` (eval mode) on the batch ``x``."""
    if backend == "torch":
        net = model.to(device).eval()
        xd = x.to(device)
        return lambda: net(xd)
    return _run(_session(onnx_bytes(model, tuple(x.shape[1:])), threads), x.cpu())


def onnx_program(model: nn.Module, shape: tuple[int, ...]) -> tuple[nn.Module, Any]:
    """The network (a deep copy, eval mode, on the CPU) and its ONNX ``ModelProto``, batch
    dimension dynamic; one line if the exporter cannot capture it."""
    require_extra(ONNX_PACKAGES, "onnx", "ONNX export")
    net = copy.deepcopy(model).cpu().eval()
    example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (example,),
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many kinds
        raise ConfigError(f"the network cannot be exported to ONNX ({first_line(exc)})") from None
    assert program is not None
    return net, program.model_proto


def onnx_bytes(model: nn.Module, shape: tuple[int, ...]) -> bytes:
    """``model`` (inputs of ``shape`` without the batch) as a serialised ONNX model."""
    _, proto = onnx_program(model, shape)
    return bytes(proto.SerializeToString())
