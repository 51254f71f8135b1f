"""The data options of every command that reads a dataset (declared once)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from nas.options import LOCAL, MAX_BATCH_SIZE, Options, option, option_fields

if TYPE_CHECKING:
    from nas.data.base import DataBundle

__all__ = ["DataOptions"]


@dataclass
class DataOptions(Options):
    """Which data a run uses and how it is served (see :func:`nas.data.load_data`)."""

    group: ClassVar[str] = "data"

    dataset: str = option(
        "digits",
        "digits (embedded, default), cifar10, cifar100, mnist, fashion-mnist, imagefolder:PATH "
        "or npz:PATH",
    )
    data_root: str | None = option(None, "where torchvision datasets are stored", tags=(LOCAL,))
    download: bool = option(
        False, "let torchvision download the dataset (needs network)", tags=(LOCAL,)
    )
    image_size: int | None = option(
        None, "resize images to SxS (default: native size; 224 for imagefolder)", ge=1
    )
    val_fraction: float = option(
        0.1, "share of the training set held out for validation", ge=0, lt=1
    )
    batch_size: int = option(128, "training batch size", ge=2, le=MAX_BATCH_SIZE)
    augment: bool = option(True, "switch off data augmentation")
    num_workers: int = option(
        0, "data loader processes (imagefolder)", flag="--loader-workers", ge=0, tags=(LOCAL,)
    )

    def input_paths(self) -> list[str]:
        """The files and folders the data are read from (a run must not delete them)."""
        kind, _, path = self.dataset.partition(":")
        reads_path = path.strip() and kind.strip().lower() in ("npz", "imagefolder")
        paths = [path.strip()] if reads_path else []
        return paths + ([self.data_root] if self.data_root else [])

    def data_options(self) -> DataOptions:
        """The data options alone (of a subclass that adds a command's own)."""
        return DataOptions(**{f.name: getattr(self, f.name) for f in option_fields(DataOptions)})

    def load(self, seed: int) -> DataBundle:
        from nas.data.load import load_data

        return load_data(
            self.dataset,
            data_root=self.data_root,
            download=self.download,
            val_fraction=self.val_fraction,
            batch_size=self.batch_size,
            seed=seed,
            augment=self.augment,
            image_size=self.image_size,
            num_workers=self.num_workers,
        )
