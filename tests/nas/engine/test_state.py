"""nas.engine.state: seeded runs are reproducible and resume bit for bit."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from nas.engine import CHECKPOINT_NAME, TrainConfig, train_model
from tests.nas.engine.conftest import run, separable_data, small_cnn, states_equal


class Crash(Exception):
    """Simulated interruption (power cut, Ctrl-C) at the start of an epoch."""


class ShuffledLoader:
    """A tensor loader with its own generator and state_dict/load_state_dict (like ours)."""

    def __init__(self, x: Tensor, y: Tensor, *, batch_size: int, seed: int, crash_at: int = 0):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.crash_at, self.epochs = crash_at, 0

    def __len__(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.epochs += 1
        if self.epochs == self.crash_at:
            raise Crash
        order = torch.randperm(len(self.y), generator=self.generator)
        for i in range(0, len(order), self.batch_size):
            idx = order[i : i + self.batch_size]
            yield self.x[idx], self.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class CrashingDataLoader:
    """A plain shuffled torch DataLoader (global RNG, no state_dict) that crashes at an epoch."""

    def __init__(self, x: Tensor, y: Tensor, *, batch_size: int, crash_at: int = 0):
        self.loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
        self.crash_at, self.epochs = crash_at, 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.epochs += 1
        if self.epochs == self.crash_at:
            raise Crash
        return iter(self.loader)


def test_same_seed_same_weights_different_seed_different() -> None:
    assert states_equal(run(3), run(3))
    assert not states_equal(run(3), run(4))


@pytest.mark.parametrize("kind", ["stateful", "dataloader"])
def test_resume_is_bit_identical(tmp_path: Path, kind: str) -> None:
    x, y = separable_data(96, seed=0)
    xv, yv = separable_data(32, seed=1)
    val = DataLoader(TensorDataset(xv, yv), batch_size=16)
    config = TrainConfig(epochs=3, lr=0.05, warmup_epochs=1, seed=7)

    def make_loader(seed: int, crash_at: int = 0) -> Any:
        if kind == "stateful":
            return ShuffledLoader(x, y, batch_size=16, seed=seed, crash_at=crash_at)
        return CrashingDataLoader(x, y, batch_size=16, crash_at=crash_at)

    straight = small_cnn(0, dropout=0.3)
    ref = train_model(straight, make_loader(1), config=config, val_loader=val, progress=False)

    out = tmp_path / "run"
    with pytest.raises(Crash):  # dies at the start of epoch 3, after 2 checkpoints
        train_model(
            small_cnn(0, dropout=0.3),
            make_loader(1, crash_at=3),
            config=config,
            val_loader=val,
            out_dir=out,
            checkpoint=True,
            progress=False,
        )
    state = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    assert state["epoch"] == 2 and len(state["records"]) == 2
    assert all(
        isinstance(v, (int, float, type(None))) for r in state["records"] for v in r.values()
    )

    torch.manual_seed(12345)  # scramble the global RNG: the checkpoint must restore it
    resumed = small_cnn(99, dropout=0.3)  # other initial weights: must come from the checkpoint
    recs = train_model(
        resumed,
        make_loader(555),
        config=config,
        val_loader=val,
        out_dir=out,
        checkpoint=True,
        resume=True,
        progress=False,
    )
    assert states_equal(straight.state_dict(), resumed.state_dict())
    assert [r.epoch for r in recs] == [1, 2, 3]
    assert [(r.train_loss, r.val_acc, r.lr) for r in recs] == [
        (r.train_loss, r.val_acc, r.lr) for r in ref
    ]

    # resuming a finished run is a no-op that returns the stored records and weights
    again = small_cnn(5, dropout=0.3)
    done = train_model(
        again,
        make_loader(0),
        config=config,
        out_dir=out,
        checkpoint=True,
        resume=True,
        progress=False,
    )
    assert [r.train_loss for r in done] == [r.train_loss for r in recs]
    assert states_equal(again.state_dict(), straight.state_dict())
