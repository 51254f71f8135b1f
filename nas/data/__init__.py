"""Datasets for channel search: :func:`load_data` returns train/val/test loaders.

Modules: ``base`` (the bundle, load options, validation split, checks and the registry of
dataset kinds), ``loaders`` (:class:`TensorLoader` and batched augmentation), ``tensors``
(``digits``, the torchvision sets, ``npz:PATH``), ``imagefolder`` (``imagefolder:PATH``),
``load`` (:func:`load_data`) and ``options`` (:class:`DataOptions`, the command-line options).
A new dataset kind registers a loader with :func:`nas.data.base.register_kind`.
"""

from nas.data.base import (
    DATASET_KINDS,
    DataBundle,
    DatasetKind,
    LoadOptions,
    num_samples,
    reseeded,
    split_indices,
    split_loader,
)
from nas.data.load import dataset_names, load_data
from nas.data.loaders import (
    Augment,
    Loader,
    RandomCropFlip,
    TensorLoader,
    random_crop,
    random_hflip,
)
from nas.data.options import DataOptions

__all__ = [
    "DATASET_KINDS",
    "Augment",
    "DataBundle",
    "DataOptions",
    "DatasetKind",
    "LoadOptions",
    "Loader",
    "RandomCropFlip",
    "TensorLoader",
    "dataset_names",
    "load_data",
    "num_samples",
    "random_crop",
    "random_hflip",
    "reseeded",
    "split_indices",
    "split_loader",
]
