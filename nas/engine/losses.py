"""Losses of the training loop: cross-entropy and knowledge distillation."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["classification_loss", "kd_loss"]


def classification_loss(logits: Tensor, targets: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy, optionally with label smoothing."""
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    *,
    alpha: float,
    temperature: float,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Knowledge-distillation loss (Hinton et al., 2015; as in TAS).

    ``(1 - alpha) * CE(student, targets) + alpha * T^2 * KL(p_teacher^T || p_student^T)``, the
    KL divergence averaged over the batch. No gradient flows into ``teacher_logits``.
    """
    t = temperature
    hard = classification_loss(student_logits, targets, label_smoothing=label_smoothing)
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits.detach() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1.0 - alpha) * hard + alpha * t * t * soft
