"""nas.engine.evaluation: evaluate restores modes and counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.engine import evaluate
from tests.nas.engine.conftest import loaders, separable_data, small_cnn


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
