"""nas.data.loaders: batched augmentation, the TensorLoader (state, drop_last) and the
SampleLoader (per-sample seeds, state, each rank's share)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from nas.data import RandomCropFlip, TensorLoader, random_crop
from nas.data.loaders import SampleLoader, share_bounds
from nas.errors import DataError
from tests.nas.data.conftest import _first_batch

# --------------------------------------------------------------------------- augmentation


def test_random_crop_matches_naive_crop() -> None:
    x = torch.randn(32, 3, 10, 9)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g)
    assert out.shape == x.shape
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (32,), generator=g)
    dx = torch.randint(0, 5, (32,), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(32):
        a, b = int(dy[i]), int(dx[i])
        assert torch.equal(out[i], padded[i, :, a : a + 10, b : b + 9])
    assert any(not torch.equal(out[i], x[i]) for i in range(32))


def test_flip_mirrors_about_half_the_images_and_keeps_the_rest() -> None:
    x = torch.randn(256, 3, 5, 7)
    out = RandomCropFlip(0, flip=True)(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(256)]
    kept = [torch.equal(out[i], x[i]) for i in range(256)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 96 < sum(flipped) < 160  # a fair coin per image, not one per batch


# --------------------------------------------------------------------------- loader state


def test_loader_state_roundtrip() -> None:
    images = torch.randn(50, 1, 6, 6)
    labels = torch.arange(50)
    loader = TensorLoader(images, labels, 8, True, RandomCropFlip(1, flip=True), seed=7)
    assert len(loader) == 7 and loader.dataset_size == 50
    list(loader)  # epoch 1
    state = loader.state_dict()
    epoch2 = list(loader)
    other = TensorLoader(images, labels, 8, True, RandomCropFlip(1, flip=True), seed=99)
    other.load_state_dict(state)
    replay = list(other)
    for (xa, ya), (xb, yb) in zip(epoch2, replay, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # a partly consumed epoch does not change what comes after it
    loader.load_state_dict(state)
    next(iter(loader))
    for (xa, ya), (xb, yb) in zip(loader, other, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(_first_batch(loader)[1], epoch2[0][1])  # epochs differ
    assert sorted(torch.cat([y for _, y in epoch2]).tolist()) == list(range(50))
    with pytest.raises(DataError):
        loader.load_state_dict({})


def test_loader_drop_last_and_validation() -> None:
    loader = TensorLoader(
        torch.zeros(9, 1, 2, 2),
        torch.zeros(9, dtype=torch.long),
        4,
        False,
        None,
        seed=0,
        drop_last=True,
    )
    assert len(loader) == 2 and sum(len(y) for _, y in loader) == 8
    with pytest.raises(DataError):
        TensorLoader(torch.zeros(9, 2, 2), torch.zeros(9, dtype=torch.long), 4, False, None, 0)


# --------------------------------------------------------------------------- SampleLoader
class _Noisy(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """Sample i: its index plus a random augmentation from torch's global generator (as
    torchvision's transforms draw), counting every decode."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.decoded: list[int] = []

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.decoded.append(i)
        return torch.full((1, 2, 2), float(i)) + torch.rand(1, 2, 2), i % 3

    def __len__(self) -> int:
        return self.n


def _sample_loader(n: int = 23, *, seed: int = 0, workers: int = 0) -> SampleLoader:
    return SampleLoader(
        _Noisy(n), [i % 3 for i in range(n)], (1, 2, 2), 5, True, seed, num_workers=workers
    )


def _epoch(batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    return [torch.cat([x.flatten(1), y[:, None].float()], 1) for x, y in batches]


def test_sample_loader_is_reproducible_whatever_the_workers_and_leaves_torchs_state() -> None:
    """Each sample is augmented under its own seed: the same batches with 0 or 2 worker
    processes, another augmentation every epoch, and the training's random state untouched."""
    torch.manual_seed(123)
    state = torch.get_rng_state()
    here = _sample_loader()
    first, second = _epoch(iter(here)), _epoch(iter(here))
    assert torch.equal(torch.get_rng_state(), state)  # loading drew nothing from it
    workers = _sample_loader(workers=2)
    for a, b in zip(first + second, _epoch(iter(workers)) + _epoch(iter(workers)), strict=True):
        assert torch.equal(a, b)
    assert len(first) == 5 and sum(len(b) for b in first) == 23
    assert not torch.equal(torch.cat(first).sort(0).values, torch.cat(second).sort(0).values)
    labels = torch.cat([b[:, -1] for b in first])
    index = torch.cat([b[:, 0].floor() for b in first])
    assert torch.equal(labels, index % 3)  # labels travel with their images


def test_sample_loader_state_replays_the_next_epoch() -> None:
    loader = _sample_loader(seed=4)
    _epoch(iter(loader))
    state = loader.state_dict()
    expected = _epoch(iter(loader))
    again = _sample_loader(seed=99)
    again.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(expected, _epoch(iter(again)), strict=True))


@pytest.mark.parametrize("world", [2, 3])
def test_sample_loader_shares_decode_each_image_once_between_the_ranks(world: int) -> None:
    """Each rank's batches hold its contiguous share of every batch's images (as
    ``tensor_split`` cuts them; batches of 5 split unevenly) with every label; together the
    ranks' shares are the one-process batches, and each image is decoded once."""
    whole = _sample_loader(seed=7)
    expected = list(iter(whole))
    decoded: list[int] = []
    parts = []
    for rank in range(world):
        loader = _sample_loader(seed=7)
        parts.append(list(loader.shares(rank, world)))
        decoded += loader.dataset.decoded  # type: ignore[attr-defined]
    assert sorted(decoded) == list(range(23))
    for i, (x, y) in enumerate(expected):
        for rank, ranks_batches in enumerate(parts):
            lo, hi = share_bounds(len(y), rank, world)
            assert (lo, hi) == (
                sum(len(t) for t in y.tensor_split(world)[:rank]),
                sum(len(t) for t in y.tensor_split(world)[: rank + 1]),
            )
            xr, yr = ranks_batches[i]
            assert torch.equal(yr, y) and torch.equal(xr, x[lo:hi])
