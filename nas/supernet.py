"""The supernet: a full network whose units are switched by channel masks.

Every BN layer that writes a unit is replaced by a :class:`MaskedBatchNorm2d` (same parameters,
buffers and key names) that scales its output channels by the unit's current mask. A mask of
shape ``(C,)`` is folded into the BN's affine parameters, so masking costs no extra activation
memory; a per-sample mask ``(N, C)`` (input-conditional gates) multiplies the output.

Masks are set by a gate strategy (:mod:`nas.strategies`) before each forward pass. With 0/1 masks
that keep the first ``w`` channels of every unit the supernet computes exactly what the extracted
network of those widths computes, so before the search the channels are put in importance order
(:func:`nas.extract.permute_channels`, function-preserving) and "the first ``w``" are the
strongest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from search_spaces import SearchSpace, round_width

DEFAULT_WIDTH_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def width_choices(max_width: int, ratios: Sequence[float], multiple: int = 1) -> list[int]:
    """The distinct widths ``ratio * max_width``, rounded to a multiple of ``multiple`` (at least
    one multiple, at most the maximum; :func:`search_spaces.round_width`), ascending."""
    return sorted({round_width(r * max_width, max_width, multiple) for r in ratios})


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


def make_maskable(model: nn.Module, space: SearchSpace) -> dict[str, list[MaskedBatchNorm2d]]:
    """Swap the BN layers of every unit for :class:`MaskedBatchNorm2d`, in place.

    Parameters and buffers are moved over (state_dict keys unchanged). Returns the masked BNs
    of each unit.
    """
    by_unit: dict[str, list[MaskedBatchNorm2d]] = {u.name: [] for u in space.units}
    for layer in space.layers:
        if layer.kind != "bn" or layer.out_unit is None:
            continue
        old = model.get_submodule(layer.name)
        if not isinstance(old, MaskedBatchNorm2d):
            assert isinstance(old, nn.BatchNorm2d)
            new = MaskedBatchNorm2d(
                old.num_features, old.eps, old.momentum, old.affine, old.track_running_stats
            )
            new.load_state_dict(old.state_dict())
            new.to(old.weight.device).train(old.training)
            model.set_submodule(layer.name, new)
            old = new
        by_unit[layer.out_unit].append(old)
    return by_unit


def nested_masks(choices: Sequence[int], max_width: int) -> Tensor:
    """``(len(choices), max_width)`` 0/1 matrix: row ``k`` keeps the first ``choices[k]``."""
    idx = torch.arange(max_width)
    return (idx[None, :] < torch.tensor(list(choices))[:, None]).float()


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], device: torch.device | str = "cpu"
) -> None:
    """Re-estimate every BN layer's running statistics on ``batches`` (a few training batches).

    A sub-network that shares weights with many others needs its own BN statistics before it
    is evaluated: the running averages collected while training under changing masks fit none
    of them.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    modes = [(module, module.training) for module in model.modules()]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.train()
    try:
        for x, _ in batches:
            model(x.to(device))
    finally:
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum
        for module, was_training in modes:
            module.training = was_training


class Supernet(nn.Module):
    """A full-width network plus the masks of its units.

    ``weights()`` are the network's parameters (trained on the training split);
    ``set_masks`` switches channels off for the next forward passes.
    """

    def __init__(self, model: nn.Module, space: SearchSpace) -> None:
        super().__init__()
        self.model = model
        self.space = space
        self.bns = make_maskable(model, space)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def weights(self) -> Iterator[nn.Parameter]:
        return self.model.parameters()

    def set_masks(self, masks: Mapping[str, Tensor] | None) -> None:
        """Per-unit masks ``(C,)`` or ``(N, C)``; None switches every channel on."""
        for unit, bns in self.bns.items():
            m = None if masks is None else masks.get(unit)
            for bn in bns:
                bn.mask = m

    def set_widths(self, widths: Mapping[str, int] | None) -> None:
        """0/1 masks keeping the first ``widths[u]`` channels (None: full width)."""
        if widths is None:
            self.set_masks(None)
            return
        device = next(self.model.parameters()).device
        self.set_masks(
            {
                u: (torch.arange(self.space.max_widths[u], device=device) < w).float()
                for u, w in widths.items()
            }
        )
