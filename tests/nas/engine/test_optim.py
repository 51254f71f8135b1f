"""nas.engine.optim: SGD parameter groups and the warm-up + cosine schedule."""

from __future__ import annotations

import itertools

import pytest
from torch import nn

from nas.engine import TrainConfig, make_optimizer, make_scheduler


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
