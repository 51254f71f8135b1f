"""One call, :func:`load_data`, returns the train/val/test loaders of a dataset.

The dataset is named by its kind (:data:`~nas.data.base.DATASET_KINDS`): ``digits``,
``cifar10``, ``cifar100``, ``mnist``, ``fashion-mnist``, ``npz:PATH`` or ``imagefolder:PATH``.
The validation split is always carved from the training set with ``seed``
(:func:`~nas.data.base.split_indices`); the official test split is never touched by it.
"""

from __future__ import annotations

from pathlib import Path

import nas.data.imagefolder
import nas.data.tensors  # noqa: F401  (registers the tensor datasets)
from nas.data.base import DATASET_KINDS, DataBundle, LoadOptions, check_bundle
from nas.errors import DataError

__all__ = ["dataset_names", "load_data"]


def dataset_names() -> list[str]:
    """How each registered dataset kind is named (``npz:PATH`` for kinds that take a path)."""
    return [DATASET_KINDS.get(k).usage for k in DATASET_KINDS]


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
    """Load dataset ``name`` (one of :func:`dataset_names`) into train/val/test loaders.

    ``val_fraction`` of the training set (chosen with ``seed``) becomes the validation loader
    (``None`` when 0). ``image_size`` resizes images to a square of that side (default: native
    size; 224 for ``imagefolder``). Every user-caused problem raises :class:`DataError`.
    """
    opts = LoadOptions(
        val_fraction,
        batch_size,
        eval_batch_size,
        seed,
        augment,
        image_size,
        num_workers,
        data_root,
        download,
    )
    opts.check()
    kind, arg = parse_name(name)
    return check_bundle(DATASET_KINDS.get(kind).load(name, arg, opts))


def parse_name(name: str) -> tuple[str, str]:
    """(kind, path): ``npz:/data/x.npz`` -> ("npz", "/data/x.npz"); ``CIFAR10`` -> ("cifar10",
    "")."""
    text = name.strip()
    lowered = text.lower()
    for kind in DATASET_KINDS:
        if DATASET_KINDS.get(kind).takes_path and lowered.startswith(kind + ":"):
            path = text[len(kind) + 1 :].strip()
            if not path:
                raise DataError(f"dataset {name!r} needs a path, e.g. {kind}:/data/my_set")
            return kind, path
    key = lowered.replace("_", "-")
    if key in DATASET_KINDS and not DATASET_KINDS.get(key).takes_path:
        return key, ""
    raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(dataset_names())}")
