"""Datasets for channel search: one call, :func:`load_data`, returns train/val/test loaders.

Datasets (the ``name`` argument):

* ``digits`` -- scikit-learn's embedded 8x8 handwritten digits (1797 images, no download). It has
  no official test split, so a stratified 20 % test split is carved with a *constant* seed: the
  test set is the same whatever ``seed`` is, so test accuracies are comparable across runs.
* ``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist`` -- torchvision datasets read from
  ``data_root`` (downloaded only when ``download=True``). They are loaded whole into memory.
* ``npz:PATH`` -- a ``.npz`` file with ``x_train, y_train, x_test, y_test`` (accepted layouts
  and value ranges: see :func:`_load_npz`).
* ``imagefolder:PATH`` -- an ImageNet-style tree ``PATH/train/<class>/*`` plus ``PATH/val`` (or
  ``PATH/test``), read lazily with torchvision ``ImageFolder`` and a torch ``DataLoader``.

The validation split is always carved from the training set with ``seed``
(:func:`split_indices`); the official test split is never touched by it.

Tensor datasets (all but ``imagefolder``) are held as one float32 tensor per split, normalised per
channel with the mean/std of the training part (after the validation part is removed), and served
by :class:`TensorLoader`, which slices batches and augments them with batched tensor ops -- much
faster on a CPU than per-sample PIL transforms. Augmentation (train loader only): random crop
with zero padding in the normalised space (zero = the channel mean) -- 4 px for CIFAR, 2 px for
(Fashion-)MNIST, 1 px for digits, ``max(1, H // 8)`` for npz -- plus a random horizontal flip for
CIFAR and Fashion-MNIST (never for digits, MNIST or npz, where flips change the meaning).
All randomness comes from the loader's own ``torch.Generator``, so a run is reproducible from
its seed and a checkpoint can resume the exact data order (``state_dict``).

``imagefolder`` uses the usual ImageNet recipe: RandomResizedCrop + horizontal flip for training,
Resize(1.14 x size) + CenterCrop for evaluation, ImageNet mean/std (0.5/0.5 for grayscale).
"""

from __future__ import annotations

import copy
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias, cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Subset
from torchvision import datasets as tv_datasets
from torchvision import transforms as T

from nas.errors import DataError, first_line

__all__ = [
    "DATASET_NAMES",
    "Augment",
    "DataBundle",
    "Loader",
    "RandomCropFlip",
    "TensorLoader",
    "load_data",
    "random_crop",
    "random_hflip",
    "split_indices",
]

DATASET_NAMES: tuple[str, ...] = (
    "digits",
    "cifar10",
    "cifar100",
    "mnist",
    "fashion-mnist",
    "imagefolder:PATH",
    "npz:PATH",
)

Augment: TypeAlias = Callable[[Tensor, torch.Generator], Tensor]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_IMAGEFOLDER_SIZE = 224
MAX_IMAGE_SIZE = 4096  # a side beyond this is a typo, not an image size
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
_GRAY_MODES = ("L", "LA", "1")


# --------------------------------------------------------------------------- augmentation


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Crop every image of ``x`` (N, C, H, W) at its own random offset after zero padding.

    Same shape out as in. One gather over an unfolded view of the padded batch: no Python loop.
    """
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    windows = padded.unfold(2, h, 1).unfold(3, w, 1)  # (N, C, 2p+1, 2p+1, H, W), a view
    return windows[torch.arange(n, device=x.device), :, dy, dx]


def random_hflip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Mirror each image of ``x`` (N, C, H, W) left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


@dataclass(frozen=True)
class RandomCropFlip:
    """Batched train augmentation: random crop with ``padding`` and optional horizontal flip."""

    padding: int
    flip: bool = False

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        x = random_crop(x, self.padding, generator)
        return random_hflip(x, generator) if self.flip else x


# --------------------------------------------------------------------------- loaders


class TensorLoader:
    """Batches of an in-memory dataset: ``(x, y)`` with x (B, C, H, W) float32, y (B,) int64.

    Each epoch (each ``iter()``) draws one fresh seed from the loader's generator, and that
    epoch's permutation and augmentation come from it. So successive epochs differ, the run is
    reproducible from ``seed``, and restoring :meth:`state_dict` replays the same next epoch
    however much of the current epoch was consumed.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        shuffle: bool,
        augment: Augment | None,
        seed: int,
        drop_last: bool = False,
    ) -> None:
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"TensorLoader needs images (N, C, H, W) and labels (N,), got "
                f"{tuple(images.shape)} and {tuple(labels.shape)}"
            )
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {batch_size}")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.drop_last = drop_last
        self._generator = torch.Generator().manual_seed(seed)

    @property
    def dataset_size(self) -> int:
        """Number of samples (N)."""
        return len(self.labels)

    def __len__(self) -> int:
        n, b = self.dataset_size, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch_seed = int(torch.randint(0, 2**62, (1,), generator=self._generator))
        generator = torch.Generator().manual_seed(epoch_seed)
        n = self.dataset_size
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        return self._batches(order, generator)

    def _batches(
        self, order: Tensor, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images.index_select(0, idx)  # a copy: callers may modify batches in place
            if self.augment is not None:
                x = self.augment(x, generator)
            yield x, self.labels.index_select(0, idx)

    def state_dict(self) -> dict[str, Tensor]:
        """The generator state: restore it to replay the same data order from here on."""
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "generator" not in state:
            raise DataError("loader state has no 'generator' entry")
        self._generator.set_state(state["generator"])


Loader: TypeAlias = TensorLoader | DataLoader


@dataclass
class DataBundle:
    """Loaders and shape facts of one dataset, as returned by :func:`load_data`."""

    name: str
    train: Loader
    val: Loader | None
    test: Loader
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] | None = None

    def describe(self) -> dict[str, object]:
        """A JSON-able summary (sizes, shapes and normalisation)."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size),
            "n_train": _num_samples(self.train),
            "n_val": 0 if self.val is None else _num_samples(self.val),
            "n_test": _num_samples(self.test),
            "mean": [round(m, 6) for m in self.mean],
            "std": [round(s, 6) for s in self.std],
        }


def _num_samples(loader: Loader) -> int:
    if isinstance(loader, TensorLoader):
        return loader.dataset_size
    return len(cast(Sized, loader.dataset))


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True)
class _Options:
    val_fraction: float
    batch_size: int
    eval_batch_size: int
    seed: int
    augment: bool
    image_size: int | None
    num_workers: int


@dataclass
class _Arrays:
    """A tensor dataset before splitting: images (N, C, H, W) float32 in [0, 1], labels int64."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    classes: tuple[str, ...] | None = None


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded random split of ``range(n)`` into sorted (train, val) index tensors.

    The validation part has ``round(n * val_fraction)`` samples (at least 1 when
    ``val_fraction > 0``); ``val_fraction`` must be in ``[0, 1)``.
    """
    _check_val_fraction(val_fraction)
    n_val = round(n * val_fraction)
    if val_fraction > 0:
        n_val = max(1, n_val)
    if n - n_val < 1:
        raise DataError(f"too few training samples ({n}) to hold out val_fraction={val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def load_data(
    name: str,
    *,
    data_root: str | Path | None = None,
    download: bool = False,
    val_fraction: float = 0.1,
    batch_size: int = 128,
    eval_batch_size: int = 512,
    seed: int = 0,
    augment: bool = True,
    image_size: int | None = None,
    num_workers: int = 0,
) -> DataBundle:
    """Load dataset ``name`` (one of :data:`DATASET_NAMES`) into train/val/test loaders.

    ``val_fraction`` of the training set (chosen with ``seed``) becomes the validation loader
    (``None`` when 0). ``image_size`` resizes images to a square of that side (default: native
    size; 224 for ``imagefolder``). Every user-caused problem raises :class:`DataError`.
    """
    opts = _Options(
        val_fraction, batch_size, eval_batch_size, seed, augment, image_size, num_workers
    )
    _check_options(opts)
    kind, arg = _parse_name(name)
    if kind == "imagefolder":
        return _imagefolder_bundle(name, Path(arg).expanduser(), opts)
    if kind == "digits":
        arrays, padding, flip = _load_digits(), 1, False
    elif kind == "npz":
        arrays, padding, flip = _load_npz(arg), -1, False
    else:
        arrays = _load_torchvision(kind, data_root, download)
        _, padding, flip = _TORCHVISION[kind]
    return _tensor_bundle(name, arrays, padding, flip, opts)


def _check_val_fraction(val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")


def _check_options(opts: _Options) -> None:
    _check_val_fraction(opts.val_fraction)
    if opts.batch_size < 2:  # BatchNorm cannot train on a single sample
        raise DataError(f"the training batch size must be at least 2, got {opts.batch_size}")
    if opts.eval_batch_size < 1:
        raise DataError(f"the evaluation batch size must be at least 1, got {opts.eval_batch_size}")
    if opts.image_size is not None and not 1 <= opts.image_size <= MAX_IMAGE_SIZE:
        raise DataError(f"image size must be in [1, {MAX_IMAGE_SIZE}], got {opts.image_size}")
    if opts.num_workers < 0:
        raise DataError(f"num_workers must be >= 0, got {opts.num_workers}")


def _parse_name(name: str) -> tuple[str, str]:
    """(kind, path): kind is a built-in name, 'npz' or 'imagefolder'."""
    text = name.strip()
    lowered = text.lower()
    for prefix in ("npz", "imagefolder"):
        if lowered.startswith(prefix + ":"):
            path = text[len(prefix) + 1 :].strip()
            if not path:
                raise DataError(f"dataset {name!r} needs a path, e.g. {prefix}:/data/my_set")
            return prefix, path
    key = lowered.replace("_", "-")
    if key == "digits" or key in _TORCHVISION:
        return key, ""
    raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")


# --------------------------------------------------------------------------- tensor datasets


def _load_digits() -> _Arrays:
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
    return _Arrays(x[tr], y[tr], x[te], y[te], 10, tuple(str(i) for i in range(10)))


def _load_torchvision(key: str, data_root: str | Path | None, download: bool) -> _Arrays:
    if data_root is None:
        raise DataError(
            f"{key} is read from disk: pass --data-root DIR (data_root=...), "
            "and --download if this machine has network access"
        )
    root = Path(data_root).expanduser()
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
    return _Arrays(
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
    """'NHW', 'NCHW' or 'NHWC' for an image array shape (see :func:`_load_npz`)."""
    if len(shape) == 3:
        return "NHW"
    c_first, c_last = shape[1] in (1, 3), shape[3] in (1, 3)
    if c_first != c_last:
        return "NCHW" if c_first else "NHWC"
    return "NCHW" if shape[1] < shape[2] else "NHWC"


def _load_npz(path_text: str | Path) -> _Arrays:
    """Read and check a ``.npz`` dataset file (arrays ``x_train, y_train, x_test, y_test``).

    Images: NHW (one channel), NCHW or NHWC, at most 4 channels. The layout is detected from
    ``x_train``: 4-D with ``shape[1]`` in (1, 3) and ``shape[3]`` not -> NCHW; ``shape[3]`` in
    (1, 3) and ``shape[1]`` not -> NHWC; otherwise (both or neither) NCHW if
    ``shape[1] < shape[2]`` else NHWC. ``x_test`` must have the same per-image shape.
    Values: integer arrays are 0..255; float arrays are taken as [0, 1] if their maximum
    (over train and test) is <= 1.0, else as 0..255. Labels: non-negative integers, 1-D (or
    (N, 1)); ``num_classes`` is the largest label + 1.
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
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return _Arrays(
        _to_nchw_float(x_train, layout, scale),
        torch.from_numpy(y_train),
        _to_nchw_float(x_test, layout, scale),
        torch.from_numpy(y_test),
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


def _tensor_bundle(
    name: str, arrays: _Arrays, padding: int, flip: bool, opts: _Options
) -> DataBundle:
    x_train, x_test = arrays.x_train, arrays.x_test
    if opts.image_size is not None:
        _check_resized_memory(name, len(x_train) + len(x_test), x_train.shape[1], opts.image_size)
        x_train, x_test = _resize(x_train, opts.image_size), _resize(x_test, opts.image_size)
    train_idx, val_idx = split_indices(len(x_train), opts.val_fraction, opts.seed)
    _check_training_samples(name, len(train_idx))
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
        drop_last=_drop_last(len(y_train), opts.batch_size),
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


def _check_resized_memory(name: str, n: int, channels: int, size: int) -> None:
    """In-memory datasets are resized once, up front: refuse sizes that cannot fit in RAM."""
    needed = n * channels * size * size * 4
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available // 2:
        raise DataError(
            f"resizing the {n} images of {name} to {size}x{size} needs {needed / 2**30:.1f} GiB "
            f"of memory ({available / 2**30:.0f} GiB on this machine); use a smaller --image-size"
        )


def _check_training_samples(name: str, n: int) -> None:
    if n < 2:
        raise DataError(
            f"{name} leaves {n} training image(s) after the validation split; need at least 2"
        )


def _drop_last(n: int, batch_size: int) -> bool:
    """Drop a final training batch of a single sample only (BatchNorm cannot train on one)."""
    return n > 1 and n % batch_size == 1


# --------------------------------------------------------------------------- image folders


def _open_image(path: str, mode: str) -> Image.Image:
    try:
        with open(path, "rb") as fh:
            return Image.open(fh).convert(mode)
    except OSError as exc:  # PIL's UnidentifiedImageError is an OSError too
        raise DataError(f"cannot read image {path}: {first_line(exc)}") from None


def _find_eval_dir(root: Path) -> Path:
    for sub in ("val", "test"):
        if (root / sub).is_dir():
            return root / sub
    raise DataError(f"imagefolder {root} has no val/ or test/ subfolder")


def _image_folder(directory: Path) -> tv_datasets.ImageFolder:
    try:
        return tv_datasets.ImageFolder(str(directory))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"imagefolder {directory}: {first_line(exc)}") from exc


def _image_mode(dataset: tv_datasets.ImageFolder) -> str:
    """'L' when the first image is grayscale, else 'RGB'."""
    first = dataset.samples[0][0]
    try:
        with Image.open(first) as img:
            return "L" if img.mode in _GRAY_MODES else "RGB"
    except OSError as exc:
        raise DataError(f"cannot read image {first}: {first_line(exc)}") from exc


def _folder_transforms(size: int, channels: int, augment: bool) -> tuple[T.Compose, T.Compose]:
    """(train, eval) transforms for image folders."""
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    evaluation = T.Compose([T.Resize(int(size * 1.14)), T.CenterCrop(size), *tail])
    if not augment:
        return evaluation, evaluation
    train = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *tail])
    return train, evaluation


def _folder_loader(dataset: Any, batch_size: int, shuffle: bool, opts: _Options) -> DataLoader:
    drop_last = shuffle and _drop_last(len(dataset), batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=opts.num_workers,
        generator=torch.Generator().manual_seed(opts.seed),
        drop_last=drop_last,
        persistent_workers=opts.num_workers > 0,
    )


def _imagefolder_bundle(name: str, root: Path, opts: _Options) -> DataBundle:
    if not root.is_dir():
        raise DataError(f"imagefolder directory not found: {root}")
    if not (root / "train").is_dir():
        raise DataError(f"imagefolder {root} has no train/ subfolder")
    eval_dir = _find_eval_dir(root)
    base = _image_folder(root / "train")
    test_ds = _image_folder(eval_dir)
    if test_ds.classes != base.classes:
        raise DataError(
            f"imagefolder {root}: class folders differ between train/ ({len(base.classes)}) "
            f"and {eval_dir.name}/ ({len(test_ds.classes)}): "
            f"{sorted(set(base.classes) ^ set(test_ds.classes))[:5]}"
        )
    mode = _image_mode(base)
    channels = 1 if mode == "L" else 3
    size = opts.image_size or DEFAULT_IMAGEFOLDER_SIZE
    train_tf, eval_tf = _folder_transforms(size, channels, opts.augment)
    image_loader = partial(_open_image, mode=mode)
    train_ds, val_ds = copy.copy(base), copy.copy(base)  # same samples, own transforms
    for ds, tf in ((train_ds, train_tf), (val_ds, eval_tf), (test_ds, eval_tf)):
        ds.transform, ds.loader = tf, image_loader
    train_idx, val_idx = split_indices(len(base), opts.val_fraction, opts.seed)
    _check_training_samples(name, len(train_idx))
    train = _folder_loader(Subset(train_ds, train_idx.tolist()), opts.batch_size, True, opts)
    val = None
    if len(val_idx) > 0:
        val = _folder_loader(Subset(val_ds, val_idx.tolist()), opts.eval_batch_size, False, opts)
    test = _folder_loader(test_ds, opts.eval_batch_size, False, opts)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
    return DataBundle(
        name=name,
        train=train,
        val=val,
        test=test,
        num_classes=len(base.classes),
        in_channels=channels,
        input_size=(size, size),
        mean=mean,
        std=std,
        classes=tuple(base.classes),
    )
