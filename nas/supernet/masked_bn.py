"""BatchNorm whose output channels are scaled by a mask (folded into the affine parameters)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MaskedBatchNorm2d"]


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose output channels are scaled by ``self.mask`` (None = all on)."""

    mask: Tensor | None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.mask = None

    def forward(self, x: Tensor) -> Tensor:
        mask = self.mask
        if mask is None or mask.dim() != 1 or not self.affine:
            out = super().forward(x)
            if mask is None:
                return out
            return out * (mask.view(1, -1, 1, 1) if mask.dim() == 1 else mask[:, :, None, None])
        return self._folded(x, mask)

    def _folded(self, x: Tensor, mask: Tensor) -> Tensor:
        """BN with ``(gamma * mask, beta * mask)``: the same result, no extra activation."""
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else factor
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight * mask,
            self.bias * mask,
            use_batch,
            factor,
            self.eps,
        )
