"""nas.engine.losses: the distillation loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nas.engine import kd_loss


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
