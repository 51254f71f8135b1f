"""How alike criteria rank channels (Huang et al. 2021, "Rethinking the pruning criteria").

For every pair of criteria and every unit: the Spearman and Kendall rank correlations of the two
criteria's channel scores, and the overlap of the channels each keeps at a keep ratio (the share
of a unit's top ``ceil(keep * width)`` channels the two have in common; 1 = the same network).
A criterion that gives a unit no ranking (constant scores, e.g. ``uniform``) has no correlation
there (NaN) and is better left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["MEASURES", "keep_overlap", "mean_matrix", "similarity_rows"]

MEASURES = ("spearman", "kendall", "keep_overlap")


def keep_overlap(a: Tensor, b: Tensor, keep: float) -> float:
    """Share of the top ``ceil(keep * n)`` channels of scores ``a`` also in the top of ``b``
    (ties broken by channel index, as extraction does)."""
    k = max(1, math.ceil(keep * a.numel()))
    top_a = set(torch.argsort(a, descending=True, stable=True)[:k].tolist())
    top_b = set(torch.argsort(b, descending=True, stable=True)[:k].tolist())
    return len(top_a & top_b) / k


def similarity_rows(
    scores: Mapping[str, Mapping[str, Tensor]], *, keep: float = 0.5
) -> list[dict[str, object]]:
    """One row per ordered pair of criteria (both directions and each with itself) and unit:
    ``criterion_a``, ``criterion_b``, ``unit``, ``channels``, ``spearman``, ``kendall``,
    ``keep_overlap``; ``scores``: criterion -> unit -> channel scores."""
    import warnings

    from scipy.stats import ConstantInputWarning, kendalltau, spearmanr

    names = list(scores)
    units = list(next(iter(scores.values()))) if names else []
    rows: list[dict[str, object]] = []
    for a in names:
        for b in names:
            for unit in units:
                sa = scores[a][unit].double()
                sb = scores[b][unit].double()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConstantInputWarning)
                    rho = float(spearmanr(sa.numpy(), sb.numpy()).statistic)
                    tau = float(kendalltau(sa.numpy(), sb.numpy()).statistic)
                rows.append(
                    {
                        "criterion_a": a,
                        "criterion_b": b,
                        "unit": unit,
                        "channels": sa.numel(),
                        "spearman": rho,
                        "kendall": tau,
                        "keep_overlap": keep_overlap(sa, sb, keep),
                    }
                )
    return rows


def mean_matrix(
    rows: Sequence[Mapping[str, object]], names: Sequence[str], measure: str
) -> list[list[float]]:
    """The mean over units of ``measure`` for every pair, as a matrix in the order of
    ``names`` (units where it is undefined left out; NaN where it is nowhere defined)."""
    sums = {(a, b): [0.0, 0] for a in names for b in names}
    for r in rows:
        value = float(r[measure])  # type: ignore[arg-type]
        key = (str(r["criterion_a"]), str(r["criterion_b"]))
        if key in sums and not math.isnan(value):
            sums[key][0] += value
            sums[key][1] += 1
    return [
        [sums[a, b][0] / sums[a, b][1] if sums[a, b][1] else math.nan for b in names] for a in names
    ]
