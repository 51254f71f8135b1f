"""nas.engine.loop: train_model learns, writes its outputs, resumes and refuses bad runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.engine import (
    CHECKPOINT_NAME,
    SUMMARY_COLUMNS,
    Distillation,
    TrainConfig,
    make_optimizer,
    make_scheduler,
    train_model,
)
from nas.errors import ConfigError
from tests.nas.engine.conftest import FAST, loaders, run, separable_data, small_cnn, states_equal


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


def test_checkpoint_needs_out_dir() -> None:
    with pytest.raises(ConfigError, match="out_dir"):
        train_model(
            small_cnn(), loaders()[0], config=TrainConfig(epochs=1), checkpoint=True, progress=False
        )


def test_bn_sparsity_drives_the_bn_scales_towards_zero() -> None:
    """Network slimming's sparsity training: the L1 sub-gradient on gamma shrinks the scales
    (what ``--criterion bn`` then prunes), and the other weights train as before."""
    gammas = {}
    for strength in (0.0, 0.3):
        train, _ = loaders()
        model = small_cnn()
        config = TrainConfig(epochs=3, bn_sparsity=strength, **FAST)
        train_model(model, train, config=config, progress=False)
        bn = model[1]
        assert isinstance(bn, nn.BatchNorm2d)
        gammas[strength] = bn.weight.detach().abs()
    assert float(gammas[0.3].mean()) < 0.5 * float(gammas[0.0].mean())
