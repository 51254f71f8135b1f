"""Image folders: ``imagefolder:PATH``, an ImageNet-style tree read lazily.

``PATH/train/<class>/*`` plus ``PATH/val`` (or ``PATH/test``), read with torchvision
``ImageFolder`` and served by a :class:`~nas.data.loaders.SampleLoader` (each sample transformed
under its own seed; each process of a data-parallel run decodes only its share of a batch), with
the usual ImageNet recipe: RandomResizedCrop + horizontal flip for training, Resize(1.14 x size)
+ CenterCrop for evaluation, ImageNet mean/std (0.5/0.5 for grayscale).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from torch.utils.data import Subset

from nas.data.base import (
    DataBundle,
    LoadOptions,
    check_training_samples,
    drop_last,
    register_kind,
    split_indices,
)
from nas.data.loaders import SampleLoader
from nas.errors import DataError, first_line

if TYPE_CHECKING:
    from torchvision import datasets as tv_datasets
    from torchvision import transforms as T

__all__ = ["DEFAULT_IMAGEFOLDER_SIZE"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)


IMAGENET_STD = (0.229, 0.224, 0.225)


DEFAULT_IMAGEFOLDER_SIZE = 224


_GRAY_MODES = ("L", "LA", "1")


@register_kind("imagefolder", takes_path=True, description="PATH/train/<class>/* and PATH/val")
def _imagefolder(name: str, arg: str, opts: LoadOptions) -> DataBundle:
    return _imagefolder_bundle(name, Path(arg).expanduser(), opts)


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
    from torchvision import datasets as tv_datasets  # slow to import: only for image folders

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
    from torchvision import transforms as T

    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    evaluation = T.Compose([T.Resize(int(size * 1.14)), T.CenterCrop(size), *tail])
    if not augment:
        return evaluation, evaluation
    train = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *tail])
    return train, evaluation


def _folder_loader(
    dataset: tv_datasets.ImageFolder,
    indices: Sequence[int] | None,
    shape: tuple[int, int, int],
    batch_size: int,
    shuffle: bool,
    opts: LoadOptions,
) -> SampleLoader:
    """Batches of ``dataset`` (of the samples at ``indices``; all: None)."""
    labels = dataset.targets if indices is None else [dataset.targets[i] for i in indices]
    return SampleLoader(
        dataset if indices is None else Subset(dataset, list(indices)),
        labels,
        shape,
        batch_size,
        shuffle,
        opts.seed,
        drop_last=shuffle and drop_last(len(labels), batch_size),
        num_workers=opts.num_workers,
    )


def _imagefolder_bundle(name: str, root: Path, opts: LoadOptions) -> DataBundle:
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
    check_training_samples(name, len(train_idx))
    shape = (channels, size, size)
    train = _folder_loader(train_ds, train_idx.tolist(), shape, opts.batch_size, True, opts)
    val = None
    if len(val_idx) > 0:
        val = _folder_loader(val_ds, val_idx.tolist(), shape, opts.eval_batch_size, False, opts)
    test = _folder_loader(test_ds, None, shape, opts.eval_batch_size, False, opts)
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
