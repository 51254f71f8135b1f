"""nas.cost.budget: the budget loss and its direction around the target band."""

from __future__ import annotations

import math

import pytest
import torch

from nas.cost import budget_loss


def budget_grad(expected: float, discrete: float, target: float = 100.0) -> tuple[float, float]:
    e = torch.tensor(expected, requires_grad=True)
    loss = budget_loss(e, discrete, target, band=0.05)
    loss.backward()
    assert e.grad is not None
    return loss.item(), e.grad.item()


def test_budget_loss_pushes_down_when_over_the_target() -> None:
    loss, grad = budget_grad(150.0, 150.0)
    assert loss == pytest.approx(math.log(1.5))
    assert grad > 0  # gradient descent lowers the expected MACs
    # the direction follows the discrete (argmax) network, even if the expectation is under
    _, grad = budget_grad(80.0, 120.0)
    assert grad > 0


def test_budget_loss_pushes_up_when_far_under_the_target() -> None:
    loss, grad = budget_grad(50.0, 50.0)
    assert loss == pytest.approx(-math.log(0.5))
    assert grad < 0  # gradient descent raises the expected MACs
    _, grad = budget_grad(120.0, 80.0)
    assert grad < 0


@pytest.mark.parametrize("discrete", [95.0, 97.0, 100.0])
def test_budget_loss_idles_inside_the_band(discrete: float) -> None:
    loss, grad = budget_grad(98.0, discrete)
    assert loss == 0.0 and grad == 0.0
