"""SGD with two parameter groups and the per-step warm-up + cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from nas.engine.config import TrainConfig
from nas.errors import ConfigError

__all__ = ["make_optimizer", "make_scheduler"]


# -- optimizer, schedule ---------------------------------------------------------------------------
def make_optimizer(params: nn.Module | Iterable[Tensor], config: TrainConfig) -> torch.optim.SGD:
    """SGD with two parameter groups: weight decay on >= 2-D weights, none on 1-D parameters.

    1-D parameters are BN scales/shifts and conv/linear biases. Frozen parameters
    (``requires_grad=False``) are left out.
    """
    tensors = params.parameters() if isinstance(params, nn.Module) else params
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    seen: set[int] = set()
    for p in tensors:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("nothing to train: the model has no parameters with requires_grad")
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


@dataclass
class _WarmupCosine:
    """LR factor at a step: linear warm-up to 1 over ``warmup`` steps, then cosine to 0."""

    warmup: int
    total: int

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> LRScheduler:
    """Per-step schedule: linear warm-up over ``warmup_epochs``, then cosine decay to 0.

    Call ``scheduler.step()`` after every optimizer step; after ``epochs * steps_per_epoch``
    steps the learning rate is 0.
    """
    if steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch must be >= 1 (got {steps_per_epoch})")
    factor = _WarmupCosine(config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch)
    return LambdaLR(optimizer, factor)
