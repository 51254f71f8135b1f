"""Functionality-oriented criterion (Qin et al. 2018, "Functionality-oriented convolutional
filter pruning"): filters that do the same thing are redundant, whatever their weights.

Each filter is described by what it responds to: its mean activation (after its BN and a ReLU,
averaged over positions) on the scoring images of every class, a ``(C, K)`` table of
:func:`class_responses`. Two filters share a function when their class profiles (each row
minus its mean over the classes: which classes excite it more than the others) correlate; the
filters of a layer are clustered by average linkage on the correlation distance ``1 - r``, cut
at ``distance`` (:func:`functional_scores`). In each cluster the filter that responds most
strongly (the norm of its row) represents the function and keeps its strength as its score;
every other member is scored ``strength * (1 - r)``, ``r`` its largest correlation with a
stronger member of its cluster, so duplicates sink to the bottom of the order and a filter
alone in its cluster keeps its strength. A filter that never fires scores 0.

The layers described are those that write a unit through a BN (CHIP's choice of feature map);
a unit no BN writes (a squeeze-excitation's inner width, a linear head's hidden features) is
described by its conv or linear writers' outputs after a ReLU. A unit's writers are combined by
the coupling rule of :mod:`nas.importance.base`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from torch import Tensor, nn

from nas.importance.activations import labelled_batches, num_classes_of
from nas.importance.base import combine_writers, register_criterion, writers
from search_spaces import SearchSpace

__all__ = ["DISTANCE", "class_responses", "functional_scores"]

DISTANCE = 0.1  # correlation distance (1 - r) under which filters share a function


def class_responses(features: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """``(sums (C, K), counts (K,))``: per channel, the sum over the images of each class of
    its activation averaged over positions (``features``: ``(N, C, ...)``), and the images per
    class; their ratio is the class-mean response, accumulated over batches by adding."""
    per_image = features.double().flatten(2).mean(2) if features.dim() > 2 else features.double()
    onehot = F.one_hot(labels.long(), num_classes).double()  # (N, K)
    return per_image.T @ onehot, onehot.sum(0)


def functional_scores(responses: Tensor, distance: float = DISTANCE) -> Tensor:
    """``(C,)`` scores (higher = keep) of the filters described by their class-mean responses
    ``(C, K)``: the strongest member of each function cluster keeps its strength, the others
    ``strength * (1 - r)`` (see the module's description)."""
    r = responses.double()
    strength = r.norm(dim=1)
    c = r.shape[0]
    if c == 1:
        return strength.float()
    corr = _profile_correlation(r)
    dist = (1 - corr).clamp(0, 2).numpy()
    np.fill_diagonal(dist, 0.0)
    dist = (dist + dist.T) / 2
    clusters = fcluster(linkage(squareform(dist, checks=False), "average"), distance, "distance")
    scores = strength.clone()
    for label in np.unique(clusters):
        members = torch.as_tensor(np.flatnonzero(clusters == label))
        ranked = members[torch.argsort(strength[members], descending=True, stable=True)]
        for i in range(1, len(ranked)):
            closest = corr[ranked[i], ranked[:i]].max().clamp(0, 1)
            scores[ranked[i]] = strength[ranked[i]] * (1 - closest)
    return scores.float()


def _profile_correlation(responses: Tensor) -> Tensor:
    """``(C, C)``: the correlation of the filters' class profiles; a filter that responds
    equally to every class (no profile) correlates 1 with another such filter, 0 with the
    rest."""
    profile = responses - responses.mean(1, keepdim=True)
    norm = profile.norm(dim=1)
    flat = norm <= 1e-12 * responses.abs().amax().clamp_min(1e-30)
    unit = profile / norm.clamp_min(1e-30)[:, None]
    corr = unit @ unit.T
    corr[flat] = 0.0
    corr[:, flat] = 0.0
    corr[flat[:, None] & flat[None, :]] = 1.0
    return corr


@register_criterion(
    "function",
    needs_data=True,
    description="redundant class responses within a function cluster (Qin et al. 2018)",
)
def function(
    model: nn.Module,
    space: SearchSpace,
    data: Iterable[Any] | None,
    images: int = 256,
    distance: float = DISTANCE,
) -> dict[str, Tensor]:
    described = [la.name for la in writers(space, "bn")]
    normalised = {u for la in writers(space, "bn") for u, _s, _e in la.unit_ranges()}
    described += [
        la.name
        for la in writers(space, ("conv", "linear"))
        if la.out_unit is not None and la.out_unit not in normalised
    ]
    num_classes = num_classes_of(model)
    sums: dict[str, Tensor] = {}
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for _x, y, outputs in labelled_batches(model, data, described, images, None):
        for name, out in outputs.items():
            s, n = class_responses(F.relu(out), y, num_classes)
            sums[name] = sums[name] + s if name in sums else s
        counts += n
    seen = counts > 0  # classes absent from the scoring images say nothing
    return combine_writers(
        space,
        {name: functional_scores(s[:, seen] / counts[seen], distance) for name, s in sums.items()},
    )
