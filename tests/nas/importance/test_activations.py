"""nas.importance.activations: CHIP's channel independence and HRel's label relevance."""

from __future__ import annotations

import torch

from nas.importance.activations import (
    kernel_mutual_information,
    nuclear_norm_drops,
    nuclear_norm_drops_svd,
)


def test_nuclear_norm_drops_equal_chips_svds_in_both_forms() -> None:
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 6, 20), (3, 20, 6), (2, 7, 7), (2, 1, 5)):  # C < P, C > P, equal, one
        a = torch.randn(*shape, generator=g, dtype=torch.float64)
        assert torch.allclose(nuclear_norm_drops(a).double(), nuclear_norm_drops_svd(a), atol=1e-5)


def test_chip_ranks_a_duplicated_channel_below_distinct_ones() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 10, 64, generator=g)
    a[:, 4] = a[:, 7]  # channel 4 repeats channel 7: neither is independent
    drops = nuclear_norm_drops(a)
    assert set(torch.argsort(drops)[:2].tolist()) == {4, 7}


def test_hrel_ranks_a_channel_carrying_the_label_above_noise() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(100) % 4
    feats = torch.randn(100, 3, 16, generator=g)  # channels 0 and 2: noise
    feats[:, 1] = torch.nn.functional.one_hot(labels, 4).repeat(1, 4).float() * 3  # the label
    feats[:, 1] += 0.1 * torch.randn(100, 16, generator=g)
    mi = kernel_mutual_information(feats, labels, 4)
    # the estimator is biased upwards on noise (100 samples, 16 dims), but not to H(Y)
    assert int(mi.argmax()) == 1 and float(mi[1]) > float(mi[[0, 2]].max()) + 0.25
    assert float(mi[1]) <= 2.0 + 1e-4  # at most H(Y) = log2(4) bits
