"""In-memory (tensor) datasets: ``digits``, the torchvision sets and ``npz:PATH``.

* ``digits`` -- scikit-learn's embedded 8x8 handwritten digits (1797 images, no download). It has
  no official test split, so a stratified 20 % test split is carved with a *constant* seed: the
  test set is the same whatever ``seed`` is, so test accuracies are comparable across runs.
* ``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist`` -- torchvision datasets read from
  ``data_root`` (downloaded only when ``download=True``). They are loaded whole into memory.
* ``npz:PATH`` -- a ``.npz`` file with ``x_train, y_train, x_test, y_test`` (accepted layouts
  and value ranges: see :func:`load_npz`).

Each is held as one float32 tensor per split, normalised per channel with the mean/std of the
training part (after the validation part is removed), and served by
:class:`~nas.data.loaders.TensorLoader`. Augmentation: random crop with zero padding -- 4 px for
CIFAR, 2 px for (Fashion-)MNIST, 1 px for digits, ``max(1, H // 8)`` for npz -- plus a random
horizontal flip for CIFAR and Fashion-MNIST (never for digits, MNIST or npz, where flips change
the meaning).
"""

from __future__ import annotations

import math
import zipfile
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nas.data.base import (
    Arrays,
    DataBundle,
    LoadOptions,
    check_labels,
    check_resized_memory,
    check_training_samples,
    drop_last,
    register_kind,
    split_indices,
)
from nas.data.loaders import RandomCropFlip, TensorLoader
from nas.errors import DataError, first_line

__all__ = ["load_npz", "tensor_bundle"]

DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 0  # constant: the digits test split never depends on the run's seed
STD_FLOOR = 1e-3

# torchvision class name, crop padding, horizontal flip
_TORCHVISION: dict[str, tuple[str, int, bool]] = {
    "cifar10": ("CIFAR10", 4, True),
    "cifar100": ("CIFAR100", 4, True),
    "mnist": ("MNIST", 2, False),
    "fashion-mnist": ("FashionMNIST", 2, True),
}


_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@register_kind("digits", description="scikit-learn's embedded 8x8 digits (1797 images)")
def _digits(name: str, arg: str, opts: LoadOptions) -> DataBundle:
    return tensor_bundle(name, _load_digits(), 1, False, opts)


def _torchvision_kind(key: str, name: str, arg: str, opts: LoadOptions) -> DataBundle:
    _, padding, flip = _TORCHVISION[key]
    return tensor_bundle(
        name, _load_torchvision(key, opts.data_root, opts.download), padding, flip, opts
    )


for _key in _TORCHVISION:
    register_kind(_key, description=f"torchvision {_TORCHVISION[_key][0]} from --data-root")(
        partial(_torchvision_kind, _key)
    )


@register_kind("npz", takes_path=True, description="x_train, y_train, x_test, y_test arrays")
def _npz(name: str, arg: str, opts: LoadOptions) -> DataBundle:
    return tensor_bundle(name, load_npz(arg), -1, False, opts)


def _load_digits() -> Arrays:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().div_(16.0).unsqueeze(1)
    y = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(
        np.arange(len(y)),
        test_size=DIGITS_TEST_FRACTION,
        stratify=digits.target,
        random_state=DIGITS_TEST_SEED,
    )
    tr, te = torch.from_numpy(np.sort(train_idx)), torch.from_numpy(np.sort(test_idx))
    return Arrays(x[tr], y[tr], x[te], y[te], 10, tuple(str(i) for i in range(10)))


def _load_torchvision(key: str, data_root: str | Path | None, download: bool) -> Arrays:
    if data_root is None:
        raise DataError(
            f"{key} is read from disk: pass --data-root DIR (data_root=...), "
            "and --download if this machine has network access"
        )
    root = Path(data_root).expanduser()
    from torchvision import datasets as tv_datasets  # slow to import: only for these sets

    cls = getattr(tv_datasets, _TORCHVISION[key][0])
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as exc:
        hint = "" if download else "; pass --download to fetch it (needs network)"
        raise DataError(f"{key} not found or corrupt under {root}{hint}") from exc
    except OSError as exc:  # a failed download (URLError) or an unreadable root
        raise DataError(f"could not get {key} into {root}: {first_line(exc)}") from exc
    x_train, x_test = np.asarray(train.data), np.asarray(test.data)
    layout = "NHW" if x_train.ndim == 3 else "NHWC"
    return Arrays(
        _to_nchw_float(x_train, layout, 255.0),
        torch.as_tensor(np.asarray(train.targets, dtype=np.int64)),
        _to_nchw_float(x_test, layout, 255.0),
        torch.as_tensor(np.asarray(test.targets, dtype=np.int64)),
        len(train.classes),
        tuple(str(c) for c in train.classes),
    )


def _to_nchw_float(x: np.ndarray, layout: str, scale: float) -> Tensor:
    """Images in ``layout`` (NHW, NHWC or NCHW) -> contiguous float32 (N, C, H, W) / ``scale``."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    if layout == "NHW":
        t = t.unsqueeze(1)
    elif layout == "NHWC":
        t = t.permute(0, 3, 1, 2)
    out = t.to(torch.float32).contiguous()
    return out.div_(scale) if scale != 1.0 else out


def _detect_layout(shape: tuple[int, ...]) -> str:
    """'NHW', 'NCHW' or 'NHWC' for an image array shape (see :func:`load_npz`)."""
    if len(shape) == 3:
        return "NHW"
    c_first, c_last = shape[1] in (1, 3), shape[3] in (1, 3)
    if c_first != c_last:
        return "NCHW" if c_first else "NHWC"
    return "NCHW" if shape[1] < shape[2] else "NHWC"


def load_npz(path_text: str | Path) -> Arrays:
    """Read and check a ``.npz`` dataset file (arrays ``x_train, y_train, x_test, y_test``).

    Images: NHW (one channel), NCHW or NHWC, at most 4 channels. The layout is detected from
    ``x_train``: 4-D with ``shape[1]`` in (1, 3) and ``shape[3]`` not -> NCHW; ``shape[3]`` in
    (1, 3) and ``shape[1]`` not -> NHWC; otherwise (both or neither) NCHW if
    ``shape[1] < shape[2]`` else NHWC. ``x_test`` must have the same per-image shape.
    Values: integer arrays are 0..255; float arrays are taken as [0, 1] if their maximum
    (over train and test) is <= 1.0, else as 0..255. Labels: non-negative integers, 1-D (or
    (N, 1)); the training labels are 0..K-1 with every class present, the test labels among
    them (:func:`~nas.data.base.check_labels`).
    """
    path = Path(path_text).expanduser()
    raw = _read_npz(path)
    x_train, x_test = raw["x_train"], raw["x_test"]
    y_train = _check_labels(path, "y_train", raw["y_train"], len(x_train))
    y_test = _check_labels(path, "y_test", raw["y_test"], len(x_test))
    _check_images(path, "x_train", x_train)
    _check_images(path, "x_test", x_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{path}: train/test image shape mismatch: {x_train.shape[1:]} vs {x_test.shape[1:]}"
        )
    layout = _detect_layout(x_train.shape)
    channels = 1 if layout == "NHW" else x_train.shape[1 if layout == "NCHW" else 3]
    if channels > 4:
        raise DataError(
            f"{path}: images have {channels} channels (layout {layout}, shape "
            f"{x_train.shape}); at most 4 are supported"
        )
    scale = _value_scale(path, x_train, x_test)
    labels_train, labels_test = torch.from_numpy(y_train), torch.from_numpy(y_test)
    num_classes = check_labels(str(path), labels_train, labels_test)
    return Arrays(
        _to_nchw_float(x_train, layout, scale),
        labels_train,
        _to_nchw_float(x_test, layout, scale),
        labels_test,
        num_classes,
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"npz file not found: {path}")
    bad_file = (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error)
    try:
        archive = np.load(path, allow_pickle=False)
    except bad_file as exc:
        raise DataError(f"{path}: not a valid .npz file ({first_line(exc)})") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: not a valid .npz file (a single .npy array, not an archive)")
    with archive:
        missing = [k for k in _NPZ_KEYS if k not in archive.files]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {', '.join(missing)}; found "
                f"{', '.join(archive.files) or 'none'} (need {', '.join(_NPZ_KEYS)})"
            )
        try:
            return {k: archive[k] for k in _NPZ_KEYS}
        except bad_file as exc:
            raise DataError(f"{path}: not a valid .npz file ({first_line(exc)})") from exc


def _check_labels(path: Path, key: str, y: np.ndarray, n_images: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DataError(f"{path}: {key} must be 1-D, got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DataError(f"{path}: {key} must hold integer labels, got dtype {y.dtype}")
    if len(y) == 0:
        raise DataError(f"{path}: {key} is empty")
    if len(y) != n_images:
        x_key = "x" + key[1:]
        raise DataError(
            f"{path}: length mismatch: {x_key} has {n_images} images, {key} has {len(y)} labels"
        )
    if y.min() < 0:
        raise DataError(f"{path}: {key} has negative labels (min {y.min()}); use 0..K-1")
    return y.astype(np.int64)


def _check_images(path: Path, key: str, x: np.ndarray) -> None:
    if x.ndim not in (3, 4):
        raise DataError(
            f"{path}: {key} must be NHW, NHWC or NCHW (3-D or 4-D), got shape {x.shape}"
        )
    if x.dtype.kind not in "iuf":
        raise DataError(f"{path}: {key} must be numeric images, got dtype {x.dtype}")
    if x.size == 0:
        raise DataError(f"{path}: {key} is empty (shape {x.shape})")


def _value_scale(path: Path, x_train: np.ndarray, x_test: np.ndarray) -> float:
    """255 for 0..255 data, 1 for float data already in [0, 1]."""
    lo = min(float(x_train.min()), float(x_test.min()))
    hi = max(float(x_train.max()), float(x_test.max()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DataError(f"{path}: images contain NaN or infinite values")
    if x_train.dtype.kind in "iu" or x_test.dtype.kind in "iu":
        if lo < 0 or hi > 255:
            raise DataError(f"{path}: integer images must be in 0..255, got {lo:g}..{hi:g}")
        return 255.0
    return 1.0 if hi <= 1.0 else 255.0


def _resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of (N, C, H, W) to (size, size); antialiased when downscaling."""
    if x.shape[-2:] == (size, size):
        return x
    antialias = size < max(x.shape[-2:])
    chunks = [
        F.interpolate(
            c, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias
        )
        for c in x.split(4096)
    ]
    return torch.cat(chunks)


def _channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    std, mean = torch.std_mean(x, dim=(0, 2, 3), correction=0)
    return mean, std.clamp_min(STD_FLOOR)


def tensor_bundle(
    name: str, arrays: Arrays, padding: int, flip: bool, opts: LoadOptions
) -> DataBundle:
    x_train, x_test = arrays.x_train, arrays.x_test
    if opts.image_size is not None:
        check_resized_memory(name, len(x_train) + len(x_test), x_train.shape[1], opts.image_size)
        x_train, x_test = _resize(x_train, opts.image_size), _resize(x_test, opts.image_size)
    train_idx, val_idx = split_indices(len(x_train), opts.val_fraction, opts.seed)
    check_training_samples(name, len(train_idx))
    x_val, y_val = x_train[val_idx], arrays.y_train[val_idx]
    x_train, y_train = x_train[train_idx], arrays.y_train[train_idx]
    mean, std = _channel_stats(x_train)
    for x in (x_train, x_val, x_test):
        x.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
    height, width = x_train.shape[-2:]
    if padding < 0:  # npz: scale the padding with the image
        padding = max(1, height // 8)
    augment = RandomCropFlip(padding, flip) if opts.augment else None
    train = TensorLoader(
        x_train,
        y_train,
        opts.batch_size,
        True,
        augment,
        opts.seed,
        drop_last=drop_last(len(y_train), opts.batch_size),
    )
    val = None
    if len(y_val) > 0:
        val = TensorLoader(x_val, y_val, opts.eval_batch_size, False, None, opts.seed)
    test = TensorLoader(
        x_test.contiguous(), arrays.y_test, opts.eval_batch_size, False, None, opts.seed
    )
    return DataBundle(
        name=name,
        train=train,
        val=val,
        test=test,
        num_classes=arrays.num_classes,
        in_channels=x_train.shape[1],
        input_size=(height, width),
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        classes=arrays.classes,
    )
