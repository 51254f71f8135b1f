"""Batches of in-memory datasets: :class:`TensorLoader` and its batched augmentation.

Augmentation (train loader only) works on whole batches with tensor ops -- much faster on a CPU
than per-sample PIL transforms: a random crop with zero padding in the normalised space (zero =
the channel mean) and an optional random horizontal flip. All randomness comes from the loader's
own ``torch.Generator``, so a run is reproducible from its seed and a checkpoint can resume the
exact data order (``state_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeAlias

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from nas.errors import DataError

__all__ = ["Augment", "Loader", "RandomCropFlip", "TensorLoader", "random_crop", "random_hflip"]

Augment: TypeAlias = Callable[[Tensor, torch.Generator], Tensor]


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
