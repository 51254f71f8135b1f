"""Accuracy and loss of a model over a loader."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import DataError

__all__ = ["EvalResult", "evaluate", "model_device"]


@dataclass
class EvalResult:
    """Accuracy (percent, 0..100) and mean cross-entropy of a model over ``count`` samples."""

    accuracy: float
    loss: float
    count: int


# -- evaluation ------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Iterable[Any], *, device: str | torch.device | None = None
) -> EvalResult:
    """Accuracy and mean cross-entropy of ``model`` over ``loader``, in eval mode.

    Batches go to ``device`` (default: the device of the model's parameters). Each module's
    train/eval mode is restored afterwards.
    """
    dev = torch.device(device) if device is not None else model_device(model)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        count = 0
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(dim=1) == y).sum()
            count += int(y.shape[0])
    finally:
        for m, was_training in modes:
            m.training = was_training
    if count == 0:
        raise DataError("cannot evaluate: the loader yielded no samples")
    return EvalResult(
        accuracy=100.0 * correct.item() / count, loss=loss_sum.item() / count, count=count
    )


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
