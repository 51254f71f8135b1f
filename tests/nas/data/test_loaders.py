"""nas.data.loaders: batched augmentation and the TensorLoader (state, drop_last)."""

from __future__ import annotations

import pytest
import torch

from nas.data import RandomCropFlip, TensorLoader, random_crop
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
