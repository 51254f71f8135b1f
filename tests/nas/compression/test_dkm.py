"""nas.compression.dkm: differentiable k-means clustering of weights."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from nas.compression import SoftClusters, attach, hard_kmeans, snap
from nas.compression.dkm import parametrisation


def test_k_equal_to_the_distinct_weights_is_exact() -> None:
    values = torch.tensor([-0.3, -0.05, 0.1, 0.4])
    g = torch.Generator().manual_seed(0)
    w = values[torch.randint(4, (6, 3, 3, 3), generator=g)]
    assert torch.equal(hard_kmeans(w, 4), values)
    conv = nn.Conv2d(3, 6, 3, bias=False)
    with torch.no_grad():
        conv.weight.copy_(w)
    model = nn.Sequential(conv)
    assert attach(model, 4, 0.5) == []  # nothing to cluster: its values are its centroids
    centroids, indices = snap(model, 4)["0"]
    assert torch.equal(conv.weight, w) and torch.equal(centroids[indices].view_as(w), w)


def test_the_soft_weights_approach_the_clustered_ones_as_the_temperature_falls() -> None:
    g = torch.Generator().manual_seed(1)
    w = torch.randn(2000, generator=g) * 0.1
    gaps = []
    for t in (2.0, 0.5, 0.05):
        soft = SoftClusters(w, 8, t)
        a, c = soft.attention(w)
        hard = c[(w[:, None] - c[None, :]).abs().argmin(1)]
        gaps.append(float((a @ c - hard).abs().mean()))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3


def test_gradients_reach_the_weights_through_the_clustering_and_snap_leaves_k_values() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.Flatten(), nn.Linear(16 * 4, 5))
    names = attach(model, 4, 0.5)
    assert names == ["0", "2"]
    x = torch.randn(2, 3, 4, 4)  # 2 x 2 positions after the 3 x 3 conv
    model(x).sum().backward()
    _, original = parametrisation(model[0])
    assert original.grad is not None and bool(original.grad.abs().sum() > 0)
    clusters = snap(model, 4)
    for name, m in (("0", model[0]), ("2", model[2])):
        assert not parametrize.is_parametrized(m)
        centroids, indices = clusters[name]
        weight = m.weight
        assert isinstance(weight, torch.Tensor)
        assert torch.unique(weight.detach()).numel() <= 4
        assert torch.equal(centroids[indices].view_as(weight), weight.detach())
        assert bool((centroids[1:] >= centroids[:-1]).all())  # sorted
