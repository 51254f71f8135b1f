"""What every dataset kind shares: the bundle of loaders, load options, the seeded validation
split, the checks, and the registry of dataset kinds (:data:`DATASET_KINDS`).

A dataset kind is registered with its loader (``DatasetKind.load(arg, options)``) and whether
its name takes a path (``npz:PATH``, ``imagefolder:PATH``); :func:`nas.data.load_data` looks the
kind up here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Subset

from nas.data.loaders import Loader, SampleLoader, TensorLoader, drop_last
from nas.errors import DataError
from nas.registry import Registry

__all__ = [
    "DATASET_KINDS",
    "MAX_IMAGE_SIZE",
    "MIN_IMAGE_SIDE",
    "MIN_TRAINING_SAMPLES",
    "Arrays",
    "DataBundle",
    "DatasetKind",
    "LoadOptions",
    "check_bundle",
    "check_labels",
    "check_resized_memory",
    "check_training_samples",
    "derived_seed",
    "drop_last",
    "reseeded",
    "split_indices",
    "split_loader",
]

MAX_IMAGE_SIZE = 4096  # a side beyond this is a typo, not an image size
MAX_CLASSES = 100_000  # a label beyond this is a typo (the classifier would not fit in memory)
MIN_IMAGE_SIDE = 4  # smaller images leave nothing to convolve
MIN_TRAINING_SAMPLES = 8  # a handful: fewer cannot train (or validate) anything


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
            "n_train": num_samples(self.train),
            "n_val": 0 if self.val is None else num_samples(self.val),
            "n_test": num_samples(self.test),
            "mean": [round(m, 6) for m in self.mean],
            "std": [round(s, 6) for s in self.std],
        }


def num_samples(loader: Loader) -> int:
    """Number of samples a loader serves (one pass)."""
    if isinstance(loader, TensorLoader | SampleLoader):
        return loader.dataset_size
    return len(cast(Sized, loader.dataset))  # a user's own torch DataLoader


@dataclass(frozen=True)
class LoadOptions:
    """How a dataset is read and served (the arguments of :func:`nas.data.load_data`)."""

    val_fraction: float
    batch_size: int
    eval_batch_size: int
    seed: int
    augment: bool
    image_size: int | None
    num_workers: int
    data_root: str | Path | None = None
    download: bool = False

    def check(self) -> None:
        check_val_fraction(self.val_fraction)
        if self.batch_size < 2:  # BatchNorm cannot train on a single sample
            raise DataError(f"the training batch size must be at least 2, got {self.batch_size}")
        if self.eval_batch_size < 1:
            raise DataError(
                f"the evaluation batch size must be at least 1, got {self.eval_batch_size}"
            )
        if self.image_size is not None and not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            raise DataError(f"image size must be in [1, {MAX_IMAGE_SIZE}], got {self.image_size}")
        if self.num_workers < 0:
            raise DataError(f"num_workers must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class DatasetKind:
    """A registered kind of dataset: ``load(arg, options)`` builds its bundle; ``arg`` is the
    path after ``kind:`` for kinds that take one (else empty)."""

    name: str
    load: Callable[[str, str, LoadOptions], DataBundle]  # (name as given, arg, options)
    takes_path: bool = False

    @property
    def usage(self) -> str:
        return f"{self.name}:PATH" if self.takes_path else self.name


DATASET_KINDS: Registry[DatasetKind] = Registry("dataset kind", error=DataError)


def register_kind(
    name: str, *, takes_path: bool = False, description: str = ""
) -> Callable[
    [Callable[[str, str, LoadOptions], DataBundle]], Callable[[str, str, LoadOptions], DataBundle]
]:
    """Register a dataset loader ``load(name, arg, options) -> DataBundle`` under ``name``."""

    def add(
        load: Callable[[str, str, LoadOptions], DataBundle],
    ) -> Callable[[str, str, LoadOptions], DataBundle]:
        DATASET_KINDS.register(name, DatasetKind(name, load, takes_path), description=description)
        return load

    return add


@dataclass
class Arrays:
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
    check_val_fraction(val_fraction)
    n_val = round(n * val_fraction)
    if val_fraction > 0:
        n_val = max(1, n_val)
    if n - n_val < 1:
        raise DataError(f"too few training samples ({n}) to hold out val_fraction={val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")


def check_resized_memory(name: str, n: int, channels: int, size: int) -> None:
    """In-memory datasets are resized once, up front: refuse sizes that cannot fit in RAM."""
    needed = n * channels * size * size * 4
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available // 2:
        raise DataError(
            f"resizing the {n} images of {name} to {size}x{size} needs {needed / 2**30:.1f} GiB "
            f"of memory ({available / 2**30:.0f} GiB on this machine); use a smaller --image-size"
        )


def check_training_samples(name: str, n: int) -> None:
    if n < MIN_TRAINING_SAMPLES:
        raise DataError(
            f"{name} leaves {n} training image(s) after the validation split; need at least "
            f"{MIN_TRAINING_SAMPLES}"
        )


def check_labels(name: str, train: Tensor, test: Tensor) -> int:
    """The number of classes K of integer labels: the training labels must be 0..K-1 with every
    class present (K >= 2), and the test labels classes the training data show."""
    top = int(train.max())
    if top >= MAX_CLASSES:
        raise DataError(
            f"{name}: training label {top} is out of range (labels are 0..K-1, at most "
            f"{MAX_CLASSES:,} classes)"
        )
    present = torch.unique(train)
    if len(present) < 2:
        raise DataError(f"{name}: the training data hold one class ({top}); need at least 2")
    if len(present) < top + 1:
        absent = sorted(set(range(top + 1)) - set(present.tolist()))
        raise DataError(
            f"{name}: labels must be 0..K-1 with every class in the training data; "
            f"{len(absent)} of 0..{top} never appear (first {absent[:5]})"
        )
    unseen = test[test > top]
    if len(unseen):
        raise DataError(
            f"{name}: test label {int(unseen[0])} never appears in the training data "
            f"(classes 0..{top})"
        )
    return top + 1


def check_bundle(bundle: DataBundle) -> DataBundle:
    """What every dataset must give a network to learn: two classes, images of at least
    ``MIN_IMAGE_SIDE`` pixels a side."""
    if bundle.num_classes < 2:
        raise DataError(f"{bundle.name} has {bundle.num_classes} class; need at least 2")
    h, w = bundle.input_size
    if min(h, w) < MIN_IMAGE_SIDE:
        raise DataError(
            f"{bundle.name}: images are {h}x{w} pixels; need at least {MIN_IMAGE_SIDE}x"
            f"{MIN_IMAGE_SIDE} (resize with --image-size)"
        )
    return bundle


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for ``purpose`` derived from ``seed`` (independent of the seed's other uses)."""
    digest = hashlib.sha256(f"channel-nas {purpose} {seed}".encode()).digest()
    return int.from_bytes(digest[:7], "little")


def reseeded(loader: Loader, seed: int) -> Loader:
    """The same samples, batches and augmentation as ``loader``, in the order of ``seed``
    (a new loader; ``loader`` itself is left as it is)."""
    if isinstance(loader, TensorLoader):
        return TensorLoader(
            loader.images,
            loader.labels,
            loader.batch_size,
            loader.shuffle,
            loader.augment,
            derived_seed(seed, "reseeded"),
            drop_last=loader.drop_last,
        )
    if isinstance(loader, SampleLoader):
        return loader.subset(range(loader.dataset_size), derived_seed(seed, "reseeded"))
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        shuffle=True,
        num_workers=loader.num_workers,
        generator=torch.Generator().manual_seed(derived_seed(seed, "reseeded")),
        drop_last=loader.drop_last,
        persistent_workers=loader.num_workers > 0,
    )


def split_loader(loader: Loader, fraction: float, seed: int) -> tuple[Loader, Loader]:
    """A training loader split in two, a seeded random ``fraction`` of its samples in the
    second part: both shuffled, augmented and batched like ``loader``, each with its own
    generator. A search trains the weights on the first and the architecture on the second."""
    if not 0 < fraction < 1:
        raise DataError(f"the split fraction must be in (0, 1), got {fraction}")
    n = num_samples(loader)
    first, second = split_indices(n, fraction, derived_seed(seed, "search split"))
    if min(len(first), len(second)) < 2:
        raise DataError(
            f"{n} training samples cannot be split into two parts of at least 2 at {fraction}"
        )
    if isinstance(loader, TensorLoader):
        return tuple(  # type: ignore[return-value]
            TensorLoader(
                loader.images[idx],
                loader.labels[idx],
                loader.batch_size,
                True,
                loader.augment,
                derived_seed(seed, f"search split {part}"),
                drop_last=drop_last(len(idx), loader.batch_size),
            )
            for part, idx in enumerate((first, second))
        )
    if isinstance(loader, SampleLoader):
        return tuple(  # type: ignore[return-value]
            loader.subset(idx.tolist(), derived_seed(seed, f"search split {part}"))
            for part, idx in enumerate((first, second))
        )
    dataset = loader.dataset  # a user's own torch DataLoader
    batch = loader.batch_size or 1
    return tuple(  # type: ignore[return-value]
        DataLoader(
            Subset(dataset, idx.tolist()),
            batch_size=batch,
            shuffle=True,
            num_workers=loader.num_workers,
            generator=torch.Generator().manual_seed(derived_seed(seed, f"search split {part}")),
            drop_last=drop_last(len(idx), batch),
            persistent_workers=loader.num_workers > 0,
        )
        for part, idx in enumerate((first, second))
    )
