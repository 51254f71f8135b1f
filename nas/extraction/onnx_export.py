"""ONNX export of a network, checked in ONNX Runtime (``nas export``, ``--export onnx``).

The network is exported with the exporter PyTorch recommends today (``torch.onnx.export(...,
dynamo=True)``, which goes through ``torch.export``), its batch dimension dynamic; the file is
then loaded in ONNX Runtime (CPU) and run on the same random inputs as the network (batches of 1
and 3): the largest difference is recorded (and must stay within :data:`ONNX_TOLERANCE`). The
packages (``onnx``, ``onnxscript``, ``onnxruntime``) are an optional extra: ``pip install -e
".[onnx]"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.cost.runtime import ONNX_PACKAGES, onnx_program
from nas.errors import require_extra
from nas.io import atomic_write_bytes
from search_spaces import WidthSpec

__all__ = ["EXPORT_FORMATS", "ONNX_TOLERANCE", "export_onnx", "require_onnx"]

EXPORT_FORMATS = ("onnx",)
ONNX_TOLERANCE = 1e-4  # largest difference allowed between ONNX Runtime and the network


def require_onnx() -> None:
    """Refuse (one line naming the extra) where the ONNX packages are not installed."""
    require_extra(ONNX_PACKAGES, "onnx", "ONNX export")


def export_onnx(model: nn.Module, spec: WidthSpec, path: str | Path) -> dict[str, Any]:
    """Write ``model`` (a static network of ``spec``'s input shape) to ``path`` as ONNX,
    atomically, after checking it in ONNX Runtime; returns what ``metrics.json`` records:
    ``onnx_opset``, ``onnx_max_abs_diff`` and the versions used."""
    import onnxruntime as ort

    shape = (spec.in_channels, *spec.input_size)
    net, proto = onnx_program(model, shape)
    data = proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    diff = 0.0
    with torch.no_grad():
        for n in (1, 3):
            x = torch.randn(n, *shape, generator=torch.Generator().manual_seed(n))
            (got,) = session.run(None, {name: x.numpy()})
            diff = max(diff, float((torch.from_numpy(got) - net(x)).abs().max()))
    if not diff <= ONNX_TOLERANCE:
        raise AssertionError(f"the ONNX export differs from the network by {diff:.3g}")
    atomic_write_bytes(path, data)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    return {
        "onnx_opset": int(opset),
        "onnx_max_abs_diff": diff,
        "onnx_runtime": ort.__version__,
        "onnx_exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
    }
