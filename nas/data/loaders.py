"""Batches: :class:`TensorLoader` for in-memory datasets and its batched augmentation, and
:class:`SampleLoader` for datasets read and transformed one sample at a time (image folders).

In-memory augmentation (train loader only) works on whole batches with tensor ops -- much faster
on a CPU than per-sample PIL transforms: a random crop with zero padding in the normalised space
(zero = the channel mean) and an optional random horizontal flip. All randomness of both loaders
comes from the loader's own ``torch.Generator``, so a run is reproducible from its seed and a
checkpoint can resume the exact data order (``state_dict``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeAlias

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from nas.errors import DataError

__all__ = [
    "Augment",
    "Loader",
    "RandomCropFlip",
    "SampleLoader",
    "TensorLoader",
    "random_crop",
    "random_hflip",
    "share_bounds",
]

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


class _EpochLoader:
    """What both loaders share: batches of ``len(labels)`` samples, an own generator from which
    each epoch draws one seed (its order and augmentation come from that seed), and the
    generator's state to replay the next epoch."""

    def __init__(
        self,
        labels: Sequence[int] | Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int,
        drop_last: bool,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1, got {batch_size}")
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._generator = torch.Generator().manual_seed(seed)

    @property
    def dataset_size(self) -> int:
        """Number of samples (N)."""
        return len(self.labels)

    def __len__(self) -> int:
        n, b = self.dataset_size, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def _epoch(self) -> tuple[Tensor, torch.Generator]:
        """The next epoch's sample order and the generator of its randomness."""
        epoch_seed = int(torch.randint(0, 2**62, (1,), generator=self._generator))
        generator = torch.Generator().manual_seed(epoch_seed)
        n = self.dataset_size
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        return order, generator

    def state_dict(self) -> dict[str, Tensor]:
        """The generator state: restore it to replay the same data order from here on."""
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if "generator" not in state:
            raise DataError("loader state has no 'generator' entry")
        self._generator.set_state(state["generator"])


class TensorLoader(_EpochLoader):
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
        super().__init__(labels, batch_size, shuffle, seed, drop_last)
        self.images = images
        self.labels: Tensor = labels
        self.augment = augment

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self._batches(*self._epoch())

    def _batches(
        self, order: Tensor, generator: torch.Generator
    ) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images.index_select(0, idx)  # a copy: callers may modify batches in place
            if self.augment is not None:
                x = self.augment(x, generator)
            yield x, self.labels.index_select(0, idx)


def share_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """The rows ``[lo, hi)`` of a batch of ``n`` that rank ``rank`` of ``world`` computes on:
    contiguous shares as ``tensor_split`` makes them, the first ``n % world`` one row larger."""
    q, r = divmod(n, world)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


# A sample as the batch plan names it: (index in the dataset, its seed, decode it here)
_Item: TypeAlias = tuple[int, int, bool]


class _SeededSamples(Dataset[tuple[Tensor | None, int]]):
    """``dataset[index]`` transformed under the sample's own seed (torch's CPU random state
    forked and seeded for it, so the transforms' draws do not depend on what ran before in
    this process or worker); a sample another rank decodes is only its label."""

    def __init__(self, dataset: Dataset[Any], labels: Sequence[int]) -> None:
        self.dataset = dataset
        self.labels = labels

    def __getitem__(self, item: _Item) -> tuple[Tensor | None, int]:
        index, seed, here = item
        if not here:
            return None, self.labels[index]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            x, y = self.dataset[index]
        return x, int(y)

    def __len__(self) -> int:
        return len(self.labels)


def _collate(
    samples: list[tuple[Tensor | None, int]], shape: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    images = [x for x, _ in samples if x is not None]
    x = torch.stack(images) if images else torch.zeros((0, *shape))
    return x, torch.tensor([y for _, y in samples], dtype=torch.long)


class SampleLoader(_EpochLoader):
    """Batches of a dataset read and transformed one sample at a time (an image folder):
    ``(x, y)`` with x (B, C, H, W) float32, y (B,) int64, decoded by ``num_workers`` worker
    processes (0: in this one).

    As with :class:`TensorLoader`, each epoch (each ``iter()``) draws one seed from the loader's
    generator, and the epoch's order and one seed per sample come from it; each sample is
    transformed under its own seed. So a sample's augmentation is the same whichever worker or
    process decodes it, a run is reproducible from ``seed`` whatever ``num_workers``, and
    restoring :meth:`state_dict` replays the same next epoch.

    :meth:`shares` serves a process of a data-parallel run the same batches with only its own
    share of each batch's images decoded (the rows :func:`share_bounds` gives it) and the labels
    of the whole batch: N processes decode each image once between them, not N times.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        labels: Sequence[int],
        sample_shape: tuple[int, ...],
        batch_size: int,
        shuffle: bool,
        seed: int,
        *,
        drop_last: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(labels, batch_size, shuffle, seed, drop_last)
        self.dataset = dataset
        self.labels: Sequence[int] = labels
        self.sample_shape = sample_shape
        self.num_workers = num_workers
        # the batch sampler: the epoch being served, replaced in place before each pass (iterated
        # in the main process, so persistent workers see each epoch's batches)
        self._plan: list[list[_Item]] = []
        self._loader = DataLoader(
            _SeededSamples(dataset, labels),
            batch_sampler=self._plan,
            num_workers=num_workers,
            collate_fn=partial(_collate, shape=sample_shape),
            persistent_workers=num_workers > 0,
            generator=torch.Generator(),  # its draws (workers' base seeds) are not the training's
        )

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.shares(0, 1)

    def shares(self, rank: int, world: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The next epoch's batches (the same as ``iter()``'s, drawing the same seed), with the
        images of rank ``rank`` of ``world``'s rows only and every label."""
        order, generator = self._epoch()
        n = self.dataset_size
        seeds = torch.randint(0, 2**62, (n,), generator=generator).tolist()
        plan = []
        for i in range(len(self)):
            positions = range(i * self.batch_size, min(n, (i + 1) * self.batch_size))
            lo, hi = share_bounds(len(positions), rank, world)
            plan.append([(int(order[p]), seeds[p], lo <= j < hi) for j, p in enumerate(positions)])
        self._plan[:] = plan
        return iter(self._loader)

    def subset(self, indices: Sequence[int], seed: int) -> SampleLoader:
        """A shuffled loader of the samples at ``indices`` (all: ``range(len)``) batched and
        transformed like this one, in the order of ``seed``."""
        return SampleLoader(
            Subset(self.dataset, list(indices)),
            [self.labels[i] for i in indices],
            self.sample_shape,
            self.batch_size,
            True,
            seed,
            drop_last=drop_last(len(indices), self.batch_size),
            num_workers=self.num_workers,
        )


def drop_last(n: int, batch_size: int) -> bool:
    """Drop a final training batch of a single sample only (BatchNorm cannot train on one)."""
    return n > 1 and n % batch_size == 1


Loader: TypeAlias = TensorLoader | SampleLoader | DataLoader  # a user's own DataLoader too
