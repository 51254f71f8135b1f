"""Kernel feature distillation (after PKKD, Xu et al. 2020): the student's feature maps at the
end of every stage follow the teacher's, compared through a kernel over spatial positions, so
the two may have any channel counts.

* **Stage ends** (:func:`stage_ends`): found by one probe forward pass, for any CNN: for each
  stretch of modules that finish at one spatial resolution, the outermost one (fewest levels of
  nesting) that finishes last: a ResNet's ``layer1``, ``layer2``, ...; a MobileNet's last block
  before the strided one (not the strided block's own expansion, nested deeper). Outputs that
  are not 4-D maps, or have a single position (a squeeze-excitation's pooled vector), say
  nothing about positions and are skipped; where branches interleave resolutions
  (ShuffleNetV2's), every stretch counts. Student and teacher of one space (any widths) have
  the same stage ends.
* **Kernel** (:func:`position_kernel`): each map is average-pooled to at most
  :data:`MAX_SIDE` x :data:`MAX_SIDE` positions; per image, the Gaussian kernel between the
  positions' feature vectors, ``exp(-||f_p - f_q||^2 / s)``, ``s`` the mean squared distance
  between the image's positions (so the kernel is unchanged by a channel permutation, a scale
  of the features, or channels the other network does not have).
* **Loss** (:func:`kernel_loss`): the mean squared difference of the student's and teacher's
  kernels, averaged over the stages; zero for identical features. The training loop adds it to
  the logit distillation with a weight ramped linearly from 0 to ``kd_feature_weight`` over the
  first half of the steps (:func:`ramp`): progressively, as the student learns the logits first.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MAX_SIDE",
    "RAMP_SHARE",
    "FeatureTap",
    "kernel_loss",
    "position_kernel",
    "ramp",
    "stage_ends",
]

MAX_SIDE = 8  # maps are pooled to at most 8 x 8 positions before their kernel is taken
RAMP_SHARE = 0.5  # the feature loss's weight reaches its value after this share of the steps


@torch.no_grad()
def stage_ends(model: nn.Module, example: Tensor) -> list[str]:
    """Names of the modules whose outputs end a stage of ``model`` (see the module), found by
    one forward pass of ``example`` (its first image) in eval mode; the model's mode is kept."""
    finished: list[tuple[str, tuple[int, int]]] = []

    def record(name: str, _m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, Tensor) and out.dim() == 4:
            finished.append((name, (int(out.shape[2]), int(out.shape[3]))))

    handles = [
        m.register_forward_hook(partial(record, name))
        for name, m in model.named_modules()
        if name  # not the model itself
    ]
    was_training = model.training
    model.eval()
    try:
        model(example[:1])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    maps = [(name, size) for name, size in finished if size[0] * size[1] > 1]  # not SE's 1 x 1
    runs: list[list[str]] = []  # the modules of each stretch at one resolution, in order
    for i, (name, size) in enumerate(maps):
        if i == 0 or size != maps[i - 1][1]:
            runs.append([])
        runs[-1].append(name)
    ends: list[str] = []
    for run in runs:  # the outermost module of the stretch that finishes last
        depth = min(name.count(".") for name in run)
        end = [name for name in run if name.count(".") == depth][-1]
        if end not in ends:
            ends.append(end)
    return ends


class FeatureTap:
    """Forward hooks that keep the outputs of ``names`` in ``model`` at each forward pass
    (``outputs``, in the order of ``names``); removed by :meth:`close`."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        self.names = names
        self.kept: dict[str, Tensor] = {}
        modules = dict(model.named_modules())
        self.handles = [modules[n].register_forward_hook(partial(self._keep, n)) for n in names]

    def _keep(self, name: str, _m: nn.Module, _i: Any, out: Tensor) -> None:
        self.kept[name] = out

    @property
    def outputs(self) -> list[Tensor]:
        return [self.kept[n] for n in self.names]

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.kept.clear()


def position_kernel(features: Tensor) -> Tensor:
    """``(N, P, P)``: per image of ``features`` ``(N, C, H, W)``, the Gaussian kernel between its
    positions (pooled to at most :data:`MAX_SIDE` per side), bandwidth the mean squared
    distance between them."""
    h, w = features.shape[-2:]
    if h > MAX_SIDE or w > MAX_SIDE:
        features = F.adaptive_avg_pool2d(features, (min(h, MAX_SIDE), min(w, MAX_SIDE)))
    f = features.flatten(2).transpose(1, 2).float()  # (N, P, C)
    sq = torch.cdist(f, f).pow(2)
    p = sq.shape[-1]
    scale = sq.sum((1, 2)) / max(1, p * (p - 1))
    return torch.exp(-sq / scale.clamp_min(1e-12)[:, None, None])


def kernel_loss(student: list[Tensor], teacher: list[Tensor]) -> Tensor:
    """The mean over stages of the mean squared difference between the student's and the
    teacher's position kernels (no gradient into the teacher)."""
    if len(student) != len(teacher) or not student:
        raise ValueError(
            f"kernel distillation needs the same stages in both networks, got {len(student)} "
            f"and {len(teacher)}"
        )
    losses = [
        (position_kernel(s) - position_kernel(t.detach())).pow(2).mean()
        for s, t in zip(student, teacher, strict=True)
    ]
    return torch.stack(losses).mean()


def ramp(step: int, total: int, weight: float) -> float:
    """The feature loss's weight at ``step`` of ``total``: linear from 0 to ``weight`` over the
    first :data:`RAMP_SHARE` of the steps, then ``weight``."""
    return weight * min(1.0, step / max(1.0, RAMP_SHARE * total))
