"""A clustered network on disk: ``clustered.pt`` beside ``arch.json``.

``clustered.pt`` (loads with ``torch.load(..., weights_only=True)``) holds, per clustered layer,
its ``K`` centroids (float32) and one index per weight packed at ``bits`` bits (the smallest of
1, 2, 4, 8, 16 that counts ``K`` values; eight 1-bit, four 2-bit or two 4-bit indices per byte),
the weight's shape, and every other tensor of the state dict (BN statistics, biases) as it is,
all in a few flat tensors with a table of contents.
:func:`load_clustered` rebuilds the network from the width spec with exactly the weights the
clustering left (``centroids[indices]``), under the original key names.

:func:`size_report` gives what the format costs: bits per clustered weight (indices and
centroid tables together), the file's bytes against ``model.pt``'s.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nas.errors import WeightsError
from nas.io import atomic_torch_save, load_weights
from search_spaces import WidthSpec
from search_spaces.files import torch_load

__all__ = [
    "CLUSTERED_FILE",
    "index_bits",
    "load_clustered",
    "pack",
    "save_clustered",
    "size_report",
    "unpack",
]

CLUSTERED_FILE = "clustered.pt"
FORMAT = 1
_WIDTHS = (1, 2, 4, 8, 16)


def index_bits(clusters: int) -> int:
    """Bits per stored index for ``clusters`` centroids (1, 2, 4, 8 or 16)."""
    need = max(1, math.ceil(math.log2(clusters)))
    for b in _WIDTHS:
        if b >= need:
            return b
    raise ValueError(f"at most 65,536 clusters are stored, got {clusters}")


def pack(indices: Tensor, bits: int) -> Tensor:
    """``indices`` (< 2**bits) packed into uint8 bytes: 8 // bits indices per byte, lowest bits
    first, or two bytes per index (low byte first) at 16 bits."""
    idx = indices.flatten().long()
    if bits == 16:
        return torch.stack([idx & 255, idx >> 8], 1).flatten().to(torch.uint8)
    per = 8 // bits
    pad = (-idx.numel()) % per
    idx = torch.cat([idx, idx.new_zeros(pad)]).view(-1, per)
    shifts = torch.arange(per) * bits
    return (idx << shifts).sum(1).to(torch.uint8)


def unpack(packed: Tensor, bits: int, count: int) -> Tensor:
    """The ``count`` indices of :func:`pack` (int64)."""
    b = packed.long()
    if bits == 16:
        pairs = b.view(-1, 2)
        return (pairs[:, 0] | (pairs[:, 1] << 8))[:count]
    per = 8 // bits
    shifts = torch.arange(per) * bits
    return ((b[:, None] >> shifts) & (2**bits - 1)).flatten()[:count]


def save_clustered(
    model: nn.Module,
    clusters: dict[str, tuple[Tensor, Tensor]],
    spec: WidthSpec,
    out_dir: str | Path,
) -> Path:
    """Write ``arch.json`` and ``clustered.pt`` of ``model`` whose layers ``clusters`` (from
    :func:`nas.compression.dkm.snap`) hold ``centroids[indices]``; returns the file's path.

    The file holds a handful of flat tensors and a table of contents (a file of many small
    tensors would spend more bytes on their records than on a small network's indices): all
    centroids (float32), all packed indices (uint8), and the other tensors of the state dict
    concatenated per dtype."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    layers: list[dict[str, Any]] = []
    centroids: list[Tensor] = []
    packed: list[Tensor] = []
    offset = 0
    for name, (c, indices) in clusters.items():
        bits = index_bits(c.numel())
        data = pack(indices, bits)
        weight = model.get_submodule(name).weight
        assert isinstance(weight, Tensor)
        layers.append(
            {
                "key": f"{name}.weight",
                "shape": list(weight.shape),
                "bits": bits,
                "clusters": int(c.numel()),
                "offset": offset,
                "bytes": int(data.numel()),
            }
        )
        centroids.append(c.float().flatten())
        packed.append(data)
        offset += int(data.numel())
    done = {layer["key"] for layer in layers}
    rest: list[dict[str, Any]] = []
    by_dtype: dict[str, list[Tensor]] = {}
    for key, value in model.state_dict().items():
        if key in done:
            continue
        dtype = str(value.dtype).removeprefix("torch.")
        rest.append({"key": key, "shape": list(value.shape), "dtype": dtype})
        by_dtype.setdefault(dtype, []).append(value.detach().cpu().flatten())
    blob = {
        "format": FORMAT,
        "layers": layers,
        "centroids": torch.cat(centroids) if centroids else torch.zeros(0),
        "indices": torch.cat(packed) if packed else torch.zeros(0, dtype=torch.uint8),
        "rest": rest,
        "rest_data": {d: torch.cat(ts) for d, ts in by_dtype.items()},
    }
    spec.save(out / "arch.json")
    path = out / CLUSTERED_FILE
    atomic_torch_save(blob, path)
    return path


def load_clustered(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """The network of a clustered run (``DIR`` with ``arch.json`` and ``clustered.pt``), rebuilt
    from its width spec with every clustered weight ``centroids[indices]``."""
    d = Path(path)
    spec = WidthSpec.load(d / "arch.json")
    if not (d / CLUSTERED_FILE).is_file():
        raise WeightsError(f"{d} holds no clustered network (no {CLUSTERED_FILE})")
    blob = torch_load(d / CLUSTERED_FILE, "clustered network")
    try:
        state = _state_dict(blob)
    except (KeyError, TypeError, RuntimeError, IndexError, ValueError, AttributeError) as exc:
        raise WeightsError(f"{d / CLUSTERED_FILE} is not a clustered network: {exc}") from None
    model = spec.get_space().build(spec.widths)
    load_weights(model, state)
    return model.to(device).eval()


def _state_dict(blob: Any) -> dict[str, Tensor]:
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"no format {FORMAT} table of contents")
    state: dict[str, Tensor] = {}
    first = 0
    for layer in blob["layers"]:
        shape, bits, k = layer["shape"], int(layer["bits"]), int(layer["clusters"])
        data = blob["indices"][layer["offset"] : layer["offset"] + layer["bytes"]]
        idx = unpack(data, bits, math.prod(shape))
        state[layer["key"]] = blob["centroids"][first : first + k][idx].view(shape)
        first += k
    offsets = dict.fromkeys(blob["rest_data"], 0)
    for item in blob["rest"]:
        n = math.prod(item["shape"])
        start = offsets[item["dtype"]]
        state[item["key"]] = blob["rest_data"][item["dtype"]][start : start + n].view(item["shape"])
        offsets[item["dtype"]] += n
    return state


def size_report(
    model: nn.Module, clusters: dict[str, tuple[Tensor, Tensor]], path: Path
) -> dict[str, Any]:
    """Bits per clustered weight (indices + the centroid tables over the clustered weights),
    the clustered weights' share of the parameters, and the file's bytes."""
    weights = sum(int(idx.numel()) for _, idx in clusters.values())
    index = sum(index_bits(c.numel()) * int(idx.numel()) for c, idx in clusters.values())
    tables = sum(32 * int(c.numel()) for c, _ in clusters.values())
    params = sum(p.numel() for p in model.parameters())
    return {
        "clustered_weights": weights,
        "clustered_share": weights / max(1, params),
        "index_bits": max((index_bits(c.numel()) for c, _ in clusters.values()), default=0),
        "bits_per_weight": (index + tables) / max(1, weights),
        "file_bytes": path.stat().st_size,
    }
