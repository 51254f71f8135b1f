"""Differentiable k-means clustering of weights (DKM, Cho et al. 2022).

During fine-tuning every conv and linear weight tensor ``W`` (its scalars, ``n`` of them) is
replaced in the forward pass by its soft-clustered version (:class:`SoftClusters`, a
parametrisation of the module's ``weight``):

1. distances ``d_ij = (w_i - c_j)^2`` to the layer's ``K`` centroids;
2. attention ``a_ij = softmax_j(-d_ij / tau)``;
3. centroids ``c_j = sum_i a_ij w_i / sum_i a_ij``, and back to 1, :data:`ITERATIONS` times
   (the k-means iterations DKM differentiates through), starting from the centroids the previous
   forward pass ended with;
4. the weights used: ``w~_i = sum_j a_ij c_j``.

Gradients reach the weights through the attention and the centroids, so the weights move to
places that cluster well while the loss is trained. ``tau`` is per layer: ``temperature`` times
the layer's mean squared distance to its nearest centroid when clustering starts (hard k-means
from the weights' quantiles), so one setting means the same softness for every layer whatever
its scale (DKM sets its temperature by hand per model).

After fine-tuning, :func:`snap` replaces every weight by its nearest centroid (one last
iteration on the final weights): the layer then holds exactly ``K`` distinct values, stored as
``K`` centroids and one index per weight (:mod:`nas.compression.storage`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = [
    "ITERATIONS",
    "SoftClusters",
    "attach",
    "clustered_layers",
    "hard_kmeans",
    "parametrisation",
    "snap",
]

ITERATIONS = 3  # k-means iterations per forward pass (warm-started from the previous pass)
INIT_ITERATIONS = 20  # Lloyd iterations of the hard k-means that starts the clustering


def clustered_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The modules whose weights are clustered: every convolution and linear layer."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
    }


@torch.no_grad()
def hard_kmeans(weights: Tensor, clusters: int, iterations: int = INIT_ITERATIONS) -> Tensor:
    """``(K,)`` centroids of the scalars ``weights`` by Lloyd's iterations from their quantiles
    (sorted; fewer distinct values than ``clusters`` give each value its own centroid and the
    rest copies of the largest)."""
    w = weights.detach().flatten().double()
    distinct = torch.unique(w)
    if distinct.numel() <= clusters:
        pad = distinct[-1:].expand(clusters - distinct.numel())
        return torch.cat([distinct, pad]).float()
    c = torch.quantile(w, torch.linspace(0, 1, clusters, dtype=torch.float64))
    for _ in range(iterations):
        nearest = (w[:, None] - c[None, :]).abs().argmin(1)
        sums = torch.zeros_like(c).index_add_(0, nearest, w)
        counts = torch.zeros_like(c).index_add_(0, nearest, torch.ones_like(w))
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c)
    return torch.sort(c).values.float()


class SoftClusters(nn.Module):
    """The parametrisation ``W -> A C`` of one layer's weights (see the module). ``centroids``
    (a buffer: saved in checkpoints) carry each pass's result to the next."""

    centroids: Tensor

    def __init__(self, weight: Tensor, clusters: int, temperature: float) -> None:
        super().__init__()
        c = hard_kmeans(weight, clusters)
        w = weight.detach().flatten()
        err = float((w[:, None] - c[None, :].to(w)).pow(2).min(1).values.mean())
        self.tau = temperature * max(err, 1e-12)
        self.register_buffer("centroids", c.to(weight))

    def attention(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """The attention ``(n, K)`` of the scalars ``w`` and the centroids after the iterations."""
        c = self.centroids.detach()
        a = torch.softmax(-(w[:, None] - c[None, :]).pow(2) / self.tau, dim=1)
        for _ in range(ITERATIONS):
            c = (a * w[:, None]).sum(0) / a.sum(0).clamp_min(1e-12)
            a = torch.softmax(-(w[:, None] - c[None, :]).pow(2) / self.tau, dim=1)
        return a, c

    def forward(self, weight: Tensor) -> Tensor:
        w = weight.flatten()
        a, c = self.attention(w)
        if self.training:
            with torch.no_grad():
                self.centroids.copy_(c.detach())
        return (a @ c).view_as(weight)


def attach(model: nn.Module, clusters: int, temperature: float) -> list[str]:
    """Parametrise the weights of every :func:`clustered_layers` module of ``model`` (in place)
    with :class:`SoftClusters`; returns their names. A layer with at most ``clusters`` distinct
    weights (a small stem or head) is left as it is: its own values are its centroids."""
    names = []
    for name, m in clustered_layers(model).items():
        weight = _weight(m)
        if torch.unique(weight.detach()).numel() <= clusters:
            continue
        parametrize.register_parametrization(
            m, "weight", SoftClusters(weight, clusters, temperature)
        )
        names.append(name)
    return names


@torch.no_grad()
def snap(model: nn.Module, clusters: int) -> dict[str, tuple[Tensor, Tensor]]:
    """Remove the parametrisations of :func:`attach`, every weight set to its nearest centroid
    (the centroids of one last iteration on the final weights, sorted); returns per layer
    ``(centroids (K,), indices (n,))``: ``centroids[indices]`` is the flattened weight. A layer
    :func:`attach` left alone gets its distinct values as centroids (padded to ``clusters``)."""
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for name, m in clustered_layers(model).items():
        if not parametrize.is_parametrized(m, "weight"):
            values, indices = torch.unique(_weight(m).detach().cpu(), return_inverse=True)
            pad = values[-1:].expand(clusters - values.numel())
            out[name] = (torch.cat([values, pad]), indices.flatten())
            continue
        soft, original = parametrisation(m)
        _, c = soft.attention(original.flatten())
        c = torch.sort(c).values
        indices = (original.flatten()[:, None] - c[None, :]).abs().argmin(1)
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
        weight = _weight(m)
        weight.copy_(c[indices].view_as(weight))
        out[name] = (c.detach().cpu(), indices.cpu())
    return out


def parametrisation(module: nn.Module) -> tuple[SoftClusters, Tensor]:
    """The :class:`SoftClusters` of ``module``'s weight and the weight it clusters (trained)."""
    chain = getattr(module, "parametrizations").weight  # noqa: B009 (set by torch at run time)
    soft, original = chain[0], chain.original
    assert isinstance(soft, SoftClusters) and isinstance(original, Tensor)
    return soft, original


def _weight(module: nn.Module) -> Tensor:
    weight = module.weight
    assert isinstance(weight, Tensor)
    return weight
