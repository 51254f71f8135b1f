"""Small data, networks and runs shared by the nas.engine tests."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from nas.engine import TrainConfig, train_model


def separable_data(n: int = 128, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two classes of 1x4x4 images whose pixel means are -1 and +1 (noise std 1)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 1, 4, 4, generator=g) + (2.0 * y - 1.0).view(-1, 1, 1, 1)
    return x, y


def small_cnn(seed: int = 0, *, dropout: float = 0.0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(8, 2),
    )


def loaders(batch_size: int = 16) -> tuple[DataLoader[Any], DataLoader[Any]]:
    x, y = separable_data(128, seed=0)
    xv, yv = separable_data(64, seed=1)
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    return train, DataLoader(TensorDataset(xv, yv), batch_size=32)


def states_equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


FAST: dict[str, Any] = {"lr": 0.05, "weight_decay": 5e-4, "seed": 0}


def run(seed: int, **kwargs: Any) -> dict[str, Tensor]:
    train, val = loaders()
    model = small_cnn(0, dropout=0.2)
    train_model(
        model,
        train,
        config=TrainConfig(epochs=2, lr=0.05, seed=seed),
        val_loader=val,
        progress=False,
        **kwargs,
    )
    return model.state_dict()
