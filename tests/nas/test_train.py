"""Tests of the train/evaluate loop: learning, determinism, resume, losses, schedule, outputs."""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from nas.engine import (
    CHECKPOINT_NAME,
    SUMMARY_COLUMNS,
    Distillation,
    TrainConfig,
    evaluate,
    kd_loss,
    make_optimizer,
    make_scheduler,
    train_model,
)
from nas.errors import ConfigError


# -- fixtures --------------------------------------------------------------------------------------
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


def loaders(batch_size: int = 16) -> tuple[DataLoader[Any], DataLoader[Any]]:
    x, y = separable_data(128, seed=0)
    xv, yv = separable_data(64, seed=1)
    train = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    return train, DataLoader(TensorDataset(xv, yv), batch_size=32)


def states_equal(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


FAST: dict[str, Any] = {"lr": 0.05, "weight_decay": 5e-4, "seed": 0}


# -- learning and outputs --------------------------------------------------------------------------
def test_learns_separable_data_and_writes_summary(tmp_path: Path) -> None:
    train, val = loaders()
    config = TrainConfig(epochs=4, warmup_epochs=1, **FAST)
    records = train_model(
        small_cnn(), train, config=config, val_loader=val, out_dir=tmp_path, progress=False
    )
    assert [r.epoch for r in records] == [1, 2, 3, 4]
    assert records[-1].val_acc is not None and records[-1].val_acc > 90.0
    assert records[-1].train_acc > 90.0
    assert records[-1].train_loss < records[0].train_loss
    with (tmp_path / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == SUMMARY_COLUMNS
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["val_acc"]) == pytest.approx(records[-1].val_acc)
    assert float(rows[1]["lr"]) == pytest.approx(config.lr)  # epoch 2 starts after warm-up
    assert not (tmp_path / CHECKPOINT_NAME).exists()  # checkpoint=False


def test_summary_without_val_loader_has_empty_cells(tmp_path: Path) -> None:
    train, _ = loaders()
    records = train_model(
        small_cnn(), train, config=TrainConfig(epochs=1, **FAST), out_dir=tmp_path, progress=False
    )
    assert records[0].val_acc is None and records[0].val_loss is None
    with (tmp_path / "summary.csv").open() as f:
        row = next(csv.DictReader(f))
    assert row["val_acc"] == "" and row["val_loss"] == ""


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    train, val = loaders()
    train_model(
        small_cnn(),
        train,
        config=TrainConfig(epochs=2, **FAST),
        val_loader=val,
        desc="baseline-run",
        progress=True,
    )
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "baseline-run" in captured.err and "val_acc" in captured.err
    assert "epoch=2/2" in captured.err


# -- determinism and resume ------------------------------------------------------------------------
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


def test_resume_without_checkpoint_starts_from_scratch(tmp_path: Path) -> None:
    a = run(3)
    b = run(3, out_dir=tmp_path, checkpoint=True, resume=True)
    assert states_equal(a, b)
    assert (tmp_path / CHECKPOINT_NAME).is_file()


def test_resume_with_other_config_is_refused(tmp_path: Path) -> None:
    run(3, out_dir=tmp_path, checkpoint=True)
    with pytest.raises(ConfigError, match="seed=3"):
        run(4, out_dir=tmp_path, checkpoint=True, resume=True)


# -- steps match a hand-written reference (fails if zero_grad is dropped) ------------------------
def test_steps_match_manual_reference_with_zeroed_gradients() -> None:
    x, y = separable_data(48, seed=2)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
    config = TrainConfig(epochs=1, lr=0.1, seed=0)

    model = small_cnn(1)
    train_model(model, batches, config=config, progress=False)

    ref = small_cnn(1)
    opt = make_optimizer(ref, config)
    sched = make_scheduler(opt, config, len(batches))
    ref.train()
    for xb, yb in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(ref(xb), yb).backward()
        opt.step()
        sched.step()
    assert states_equal(model.state_dict(), ref.state_dict())

    # sanity: accumulating gradients (no zero_grad) gives different weights
    acc = small_cnn(1)
    opt = make_optimizer(acc, config)
    sched = make_scheduler(opt, config, len(batches))
    for xb, yb in batches:
        F.cross_entropy(acc(xb), yb).backward()
        opt.step()
        sched.step()
    assert not states_equal(model.state_dict(), acc.state_dict())


def test_teacher_is_used_unchanged_and_given_back_as_it_was() -> None:
    train, _ = loaders()
    teacher = small_cnn(5)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    teacher.train()
    config = TrainConfig(epochs=1, **FAST)
    with_kd = small_cnn(0)
    distill = Distillation(kd_alpha=1.0)
    train_model(with_kd, train, config=config, teacher=teacher, distill=distill, progress=False)
    assert states_equal(before, teacher.state_dict())  # weights and BN stats untouched
    assert all(p.grad is None for p in teacher.parameters())  # no gradient reached it
    assert teacher.training  # the user's model gets its own mode back ...
    assert all(p.requires_grad for p in teacher.parameters())  # ... and is not frozen
    plain = small_cnn(0)
    train_model(plain, loaders()[0], config=config, progress=False)
    assert not states_equal(with_kd.state_dict(), plain.state_dict())


def test_divergence_is_a_clear_config_error() -> None:
    linear = nn.Linear(16, 2)
    with torch.no_grad():
        linear.weight.fill_(float("nan"))
    model = nn.Sequential(nn.Flatten(), linear)
    x, y = separable_data(32)
    with pytest.raises(ConfigError, match=r"diverged .* at epoch 1; lower --lr"):
        train_model(model, [(x, y)], config=TrainConfig(epochs=2), progress=False)


# -- losses ----------------------------------------------------------------------------------------
def test_kd_loss() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(8, 5, generator=g, requires_grad=True)
    t = torch.randn(8, 5, generator=g, requires_grad=True)
    y = torch.randint(0, 5, (8,), generator=g)

    ce = F.cross_entropy(s, y, label_smoothing=0.1)
    assert torch.allclose(kd_loss(s, t, y, alpha=0.0, temperature=4.0, label_smoothing=0.1), ce)
    assert kd_loss(s, s.detach().clone(), y, alpha=1.0, temperature=4.0).item() == 0.0

    temp, alpha = 3.0, 0.7
    p_t = F.softmax(t / temp, dim=1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / temp, dim=1))).sum(1).mean()
    expected = (1 - alpha) * F.cross_entropy(s, y) + alpha * temp**2 * kl
    loss = kd_loss(s, t, y, alpha=alpha, temperature=temp)
    assert torch.allclose(loss, expected, atol=1e-6)

    loss.backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


# -- optimizer and schedule ------------------------------------------------------------------------
def test_scheduler_warmup_then_cosine_to_zero() -> None:
    config = TrainConfig(epochs=4, warmup_epochs=1, lr=0.2)
    steps = 10
    model = nn.Linear(3, 2)
    opt = make_optimizer(model, config)
    sched = make_scheduler(opt, config, steps)
    lrs = []
    for _ in range(config.epochs * steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:10] == pytest.approx([0.2 * (i + 1) / 10 for i in range(10)])  # linear warm-up
    assert lrs[10] == pytest.approx(0.2)
    assert lrs[25] == pytest.approx(0.1)  # halfway through the cosine
    assert all(a > b for a, b in itertools.pairwise(lrs[10:]))  # strictly decreasing
    assert lrs[-1] < 0.2 * 0.01
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # after the last step
    assert all(g["lr"] == pytest.approx(0.0, abs=1e-12) for g in opt.param_groups)


def test_no_weight_decay_on_bn_and_biases() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    config = TrainConfig(weight_decay=1e-3)
    opt = make_optimizer(model, config)
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert by_decay[1e-3] == {id(model[0].weight), id(model[3].weight)}
    assert by_decay[0.0] == {
        id(model[0].bias),
        id(model[1].weight),
        id(model[1].bias),
        id(model[3].bias),
    }
    assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9


# -- evaluate --------------------------------------------------------------------------------------
def test_evaluate_restores_modes_and_counts() -> None:
    model = small_cnn(0)
    model.train()
    model[1].eval()  # a frozen BN stays frozen
    _, val = loaders()
    result = evaluate(model, val)
    assert model.training and model[0].training and not model[1].training
    assert result.count == 64
    model.eval()
    with torch.no_grad():
        x, y = separable_data(64, seed=1)  # the validation set of loaders()
        logits = model(x)
    assert result.accuracy == pytest.approx(100.0 * (logits.argmax(1) == y).float().mean().item())
    assert result.loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    evaluate(model, val)
    assert not model.training


# -- configuration errors --------------------------------------------------------------------------
def test_bad_distillation_raises_one_line() -> None:
    for changes, message in (
        ({"kd_alpha": 1.5}, r"--kd-alpha must be in \[0, 1\], got 1.5"),
        ({"kd_temperature": 0.0}, "--kd-temperature must be > 0, got 0"),
    ):
        with pytest.raises(ConfigError, match=message):
            Distillation(**changes).validate()
        with pytest.raises(ConfigError, match=message):
            train_model(
                small_cnn(),
                loaders()[0],
                config=TrainConfig(epochs=1),
                teacher=small_cnn(),
                distill=Distillation(**changes),
                progress=False,
            )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, "--epochs must be >= 1"),
        ({"lr": 0.0}, "--lr must be > 0"),
        ({"lr": float("nan")}, "--lr must be a finite number"),
        ({"label_smoothing": 1.0}, r"--label-smoothing must be in \[0, 1\)"),
        ({"warmup_epochs": -1}, "--warmup-epochs must be >= 0"),
        ({"warmup_epochs": 30}, r"--warmup-epochs must be in \[0, epochs=30\)"),
        ({"momentum": 0.0}, "nesterov"),
        ({"device": "tpu:zero"}, "device"),
    ],
)
def test_bad_config_raises_one_line(changes: dict[str, Any], message: str) -> None:
    config = TrainConfig(**changes)
    with pytest.raises(ConfigError, match=message) as info:
        config.validate()
    assert "\n" not in str(info.value)
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError):
        train_model(model, loaders()[0], config=config, progress=False)
    assert states_equal(before, model.state_dict())


def test_checkpoint_needs_out_dir() -> None:
    with pytest.raises(ConfigError, match="out_dir"):
        train_model(
            small_cnn(), loaders()[0], config=TrainConfig(epochs=1), checkpoint=True, progress=False
        )
