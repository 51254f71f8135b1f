"""Criteria similarity: rank correlations and the overlap of the kept channels."""

from __future__ import annotations

import math

import pytest
import torch

from nas.importance.similarity import keep_overlap, mean_matrix, similarity_rows


def _scores() -> dict[str, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    a = {"u1": torch.rand(16, generator=g), "u2": torch.rand(32, generator=g)}
    return {
        "a": a,
        "same_order": {u: 3 * s + 1 for u, s in a.items()},  # monotone: the same ranking
        "reversed": {u: -s for u, s in a.items()},
        "flat": {u: torch.zeros_like(s) for u, s in a.items()},
    }


def test_a_criterion_is_identical_to_itself_and_to_a_monotone_rescaling() -> None:
    rows = similarity_rows(_scores(), keep=0.5)
    names = ["a", "same_order", "reversed", "flat"]
    for measure in ("spearman", "kendall", "keep_overlap"):
        m = mean_matrix(rows, names, measure)
        assert m[0][0] == pytest.approx(1.0) and m[0][1] == pytest.approx(1.0)
        assert m[1][0] == pytest.approx(m[0][1])  # symmetric
    assert mean_matrix(rows, names, "spearman")[0][2] == pytest.approx(-1.0)
    assert mean_matrix(rows, names, "kendall")[0][2] == pytest.approx(-1.0)
    assert mean_matrix(rows, names, "keep_overlap")[0][2] == pytest.approx(0.0)  # disjoint halves
    assert math.isnan(mean_matrix(rows, names, "spearman")[0][3])  # no ranking: undefined
    assert len(rows) == len(names) ** 2 * 2  # every ordered pair, every unit


def test_keep_overlap_counts_the_shared_top_channels() -> None:
    a = torch.tensor([4.0, 3.0, 2.0, 1.0])
    b = torch.tensor([4.0, 1.0, 3.0, 2.0])
    assert keep_overlap(a, b, 0.5) == 0.5  # tops {0, 1} and {0, 2}
    assert keep_overlap(a, b, 1.0) == 1.0
    assert keep_overlap(a, b, 0.01) == 1.0  # at least one channel: both keep channel 0
