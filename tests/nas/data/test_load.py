"""nas.data.load: load_data's dataset names, and every registered dataset kind."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data import DATASET_KINDS, dataset_names, load_data
from nas.errors import DataError


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError, match="unknown dataset") as info:
        load_data("imagenet21k")
    message = str(info.value)
    assert "\n" not in message
    assert all(name in message for name in dataset_names())


def _idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-format (IDX) file: magic number, dimensions, then the bytes."""
    magic = 0x0803 if array.ndim == 3 else 0x0801
    header = struct.pack(f">i{array.ndim}i", magic, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _instance(kind: str, root: Path) -> tuple[str, dict[str, Any]] | None:
    """A tiny local instance of a dataset kind (name and load_data options), or None where the
    kind cannot be made offline (torchvision's CIFAR checks the MD5 of the official files)."""
    g = np.random.default_rng(0)
    if kind == "digits":
        return "digits", {}
    if kind == "npz":
        x = g.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
        y = np.arange(40) % 4
        np.savez(root / "set.npz", x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
        return f"npz:{root / 'set.npz'}", {}
    if kind == "imagefolder":
        for split in ("train", "val"):
            for label in ("a", "b"):
                (root / split / label).mkdir(parents=True)
                for i in range(6):
                    pixels = g.integers(0, 256, (10, 10, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(root / split / label / f"{i}.png")
        return f"imagefolder:{root}", {"image_size": 8}
    if kind in ("mnist", "fashion-mnist"):
        raw = root / ("MNIST" if kind == "mnist" else "FashionMNIST") / "raw"
        raw.mkdir(parents=True)
        for prefix, n in (("train", 30), ("t10k", 10)):
            _idx(raw / f"{prefix}-images-idx3-ubyte", g.integers(0, 256, (n, 28, 28)))
            _idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
        return kind, {"data_root": str(root)}
    return None


@pytest.mark.parametrize("kind", DATASET_KINDS.names())
def test_every_dataset_kind_loads_into_the_same_bundle(kind: str, tmp_path: Path) -> None:
    made = _instance(kind, tmp_path)
    if made is None:  # without its files: one line that says where they are read from
        with pytest.raises(DataError, match="--data-root") as info:
            load_data(kind)
        assert "\n" not in str(info.value)
        return
    name, options = made
    data = load_data(name, batch_size=4, eval_batch_size=5, seed=0, **options)
    assert data.val is not None
    for loader in (data.train, data.val, data.test):
        x, y = next(iter(loader))
        assert x.shape[1:] == (data.in_channels, *data.input_size) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) < data.num_classes
    described = data.describe()
    assert all(int(str(described[k])) > 0 for k in ("n_train", "n_val", "n_test"))
