"""The most probable widths inside a cost band: dynamic programming over the units' choices.

Maximise the total log-probability of the chosen width choices, ``sum_u log p_u(k_u)``, subject
to ``lo <= cost(widths) <= hi``. The cost of a space (MACs, or a per-layer latency) is a sum of
per-layer terms, each a function of the layer's input and output widths (:class:`CostTerm`), so
every term involves at most two units. That structure makes the problem a knapsack:

* **hubs** are the units that couple with many others (a residual stream: ``stage`` and
  ``stem`` units). Their assignments are enumerated, most probable first, and searched by
  branch and bound (an assignment whose best imaginable total cannot beat the best found is
  skipped), up to a work limit (``work``);
* given the hubs, the other units fall into independent **clusters** (a block-internal unit
  alone, or the two inner units of a Bottleneck block together), each with a cost per state;
* a dynamic program over the clusters keeps, for every cost bin, the most probable choice of
  states; costs are binned finely enough (``n_clusters`` bins per band width) that the bins near
  the band hold every candidate, and each candidate is then checked with the exact cost.

Every candidate is checked with the exact cost, so the result is always inside the band. Under
option A (no hubs) and for ResNet-20/56 option B (10^3 hub assignments, all within the work
limit) it is the most probable assignment in the band up to the binning (tested against
enumeration); for larger spaces it is the best among the most probable hub assignments.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CostTerm", "most_probable_in_band"]

HUB_KINDS = ("stage", "stem")
MAX_CLUSTER_STATES = 1 << 20  # a larger cluster gives up its most coupled unit to the hubs


@dataclass(frozen=True)
class CostTerm:
    """One layer's cost: ``fn(c_in, c_out)`` (elementwise on float64 tensors) with ``c_in`` the
    width of ``in_unit`` (``fixed_in`` when None) and ``c_out`` that of ``out_unit``."""

    in_unit: str | None
    out_unit: str | None
    fixed_in: int
    fixed_out: int
    fn: Callable[[Tensor, Tensor], Tensor]


@dataclass
class _Cluster:
    units: list[str]
    states: Tensor  # (S, len(units)) widths
    log_prob: Tensor  # (S,)


def _exact(terms: Sequence[CostTerm], widths: Mapping[str, int]) -> float:
    total = 0.0
    for t in terms:
        a = widths[t.in_unit] if t.in_unit is not None else t.fixed_in
        b = widths[t.out_unit] if t.out_unit is not None else t.fixed_out
        total += float(t.fn(torch.tensor(float(a)), torch.tensor(float(b))))
    return total


def most_probable_in_band(
    terms: Sequence[CostTerm],
    units: Sequence[tuple[str, str]],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
    lo: float,
    hi: float,
    *,
    work: float = 4e8,
    batch: int = 64,
) -> dict[str, int] | None:
    """The most probable assignment (one width per unit, from ``choices``) whose cost is in
    ``[lo, hi]``, or None where no assignment of the choices lands there.

    ``units``: (name, kind) of every unit; ``log_probs[u][k]`` is the log-probability of
    ``choices[u][k]``; ``work``: the most (hub assignments x cluster states x cost bins)
    examined, which sets how many of the most probable hub assignments are searched (all of
    them for ResNet-20/56 option B); ``batch``: hub assignments searched together.
    """
    names = [u for u, _ in units]
    hubs = _hubs(terms, names, [u for u, kind in units if kind in HUB_KINDS], choices)
    clusters = _clusters(terms, names, hubs, choices, log_probs)
    step = max((hi - lo) / (2 * max(1, len(clusters))), 1e-9)
    per_state = max(1.0, sum(c.states.shape[0] for c in clusters) * hi / step)
    hub_widths, hub_lp = _hub_states(hubs, choices, log_probs, max(batch, int(work / per_state)))
    # hub assignments that can reach the band at all, by their upper bound (every cluster at
    # its most probable state): branch and bound
    base, per = _costs(terms, hubs, clusters, hub_widths)
    low = base + sum((c.min(1).values for c in per), torch.zeros_like(base))
    high = base + sum((c.max(1).values for c in per), torch.zeros_like(base))
    reachable = torch.nonzero((low <= hi) & (high >= lo)).flatten()
    bound = hub_lp + sum(float(c.log_prob.max()) for c in clusters)
    order = reachable[torch.argsort(bound[reachable], descending=True, stable=True)]
    found: tuple[float, dict[str, int]] | None = None
    if len(order) == 0:
        return None
    for rows in order.split(batch):
        if found is not None and float(bound[rows[0]]) <= found[0]:
            break  # no assignment of the remaining hubs can do better
        table = _dp(terms, hubs, clusters, hub_widths[rows], hub_lp[rows], lo, hi, step)
        for row in range(len(rows)):
            candidate = table.best_exact(row, lo, hi, above=None if found is None else found[0])
            if candidate is not None and (found is None or candidate[0] > found[0]):
                found = candidate
    return None if found is None else {u: found[1][u] for u in names}


def _groups(
    terms: Sequence[CostTerm], names: Sequence[str], hubs: Sequence[str]
) -> list[list[str]]:
    """Non-hub units grouped so that no cost term couples two groups (union-find)."""
    parent = {u: u for u in names if u not in set(hubs)}

    def root(u: str) -> str:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u

    for t in terms:
        a, b = t.in_unit, t.out_unit
        if a in parent and b in parent and a != b:
            parent[root(a)] = root(b)
    groups: dict[str, list[str]] = {}
    for u in parent:
        groups.setdefault(root(u), []).append(u)
    return list(groups.values())


def _hubs(
    terms: Sequence[CostTerm],
    names: Sequence[str],
    hubs: Sequence[str],
    choices: Mapping[str, Sequence[int]],
) -> list[str]:
    """``hubs`` plus, while a cluster would have more than :data:`MAX_CLUSTER_STATES` states,
    its unit coupled to the most others (a chain of units, as in VGG or SqueezeNet, would
    otherwise be one cluster whose states are every combination of its units' choices)."""
    chosen = set(hubs)
    while True:
        big = next(
            (
                g
                for g in _groups(terms, names, sorted(chosen))
                if math.prod(len(choices[u]) for u in g) > MAX_CLUSTER_STATES
            ),
            None,
        )
        if big is None:
            return [u for u in names if u in chosen]
        partners: dict[str, set[str]] = {u: set() for u in big}
        for t in terms:
            a, b = t.in_unit, t.out_unit
            if a in partners and b in partners and a != b:
                partners[a].add(b)
                partners[b].add(a)
        chosen.add(max(big, key=lambda u: len(partners[u])))


def _clusters(
    terms: Sequence[CostTerm],
    names: Sequence[str],
    hubs: Sequence[str],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
) -> list[_Cluster]:
    """The clusters of :func:`_groups`, each with every combination of its units' choices."""
    groups = {i: g for i, g in enumerate(_groups(terms, names, hubs))}
    out = []
    for members in groups.values():
        grids = [list(range(len(choices[u]))) for u in members]
        combos = torch.tensor(list(itertools.product(*grids)), dtype=torch.long)
        widths = torch.stack(
            [
                torch.tensor(choices[u], dtype=torch.float64)[combos[:, j]]
                for j, u in enumerate(members)
            ],
            1,
        )
        lp = sum(log_probs[u].detach().double().cpu()[combos[:, j]] for j, u in enumerate(members))
        out.append(_Cluster(members, widths, torch.as_tensor(lp, dtype=torch.float64)))
    return out


def _hub_states(
    hubs: Sequence[str],
    choices: Mapping[str, Sequence[int]],
    log_probs: Mapping[str, Tensor],
    limit: int,
) -> tuple[Tensor, Tensor]:
    """Hub assignments ``(H, n_hubs)`` (widths) and their log-probabilities ``(H,)``: all of
    them, or the ``limit`` most probable (a beam over the hubs in order)."""
    lps = [log_probs[u].detach().double().cpu() for u in hubs]
    beam_idx = torch.zeros(1, 0, dtype=torch.long)
    beam_lp = torch.zeros(1, dtype=torch.float64)
    for lp in lps:
        k = len(lp)
        beam_idx = torch.cat(
            [beam_idx.repeat_interleave(k, 0), torch.arange(k).repeat(len(beam_idx))[:, None]], 1
        )
        beam_lp = beam_lp.repeat_interleave(k) + lp.repeat(len(beam_lp))
        if len(beam_lp) > limit:
            top = torch.argsort(beam_lp, descending=True, stable=True)[:limit]
            beam_idx, beam_lp = beam_idx[top], beam_lp[top]
    widths = (
        torch.stack(
            [
                torch.tensor(choices[u], dtype=torch.float64)[beam_idx[:, j]]
                for j, u in enumerate(hubs)
            ],
            1,
        )
        if hubs
        else torch.zeros(1, 0, dtype=torch.float64)
    )
    return widths, beam_lp


def _width(
    unit: str | None,
    fixed_width: int,
    hubs: Sequence[str],
    hub_widths: Tensor,
    cluster: _Cluster | None,
) -> Tensor:
    """The width ``unit`` has: ``(H, 1)`` for a hub, ``(1, S)`` for a unit of ``cluster``,
    a scalar for a fixed width."""
    if unit is None:
        return torch.tensor(float(fixed_width), dtype=torch.float64)
    if unit in hubs:
        return hub_widths[:, hubs.index(unit)][:, None]
    assert cluster is not None
    return cluster.states[:, cluster.units.index(unit)][None, :]


def _costs(
    terms: Sequence[CostTerm],
    hubs: Sequence[str],
    clusters: Sequence[_Cluster],
    hub_widths: Tensor,
) -> tuple[Tensor, list[Tensor]]:
    """The constant cost ``(H,)`` (terms of hubs and fixed widths only) and each cluster's cost
    per state ``(H, S)``, for every hub assignment."""
    h = hub_widths.shape[0]
    owner = {u: c for c in clusters for u in c.units}
    base = torch.zeros(h, dtype=torch.float64)
    per = [torch.zeros(h, c.states.shape[0], dtype=torch.float64) for c in clusters]
    for t in terms:
        cluster = owner.get(t.in_unit or "") or owner.get(t.out_unit or "")
        a = _width(t.in_unit, t.fixed_in, hubs, hub_widths, cluster)
        b = _width(t.out_unit, t.fixed_out, hubs, hub_widths, cluster)
        value = t.fn(a, b)
        if cluster is None:
            base = base + value.reshape(-1).expand(h) if value.dim() else base + value
        else:
            i = clusters.index(cluster)
            per[i] = per[i] + value
    return base, per


@dataclass
class _Table:
    """The knapsack of one batch of hub assignments: best values per (row, bin), the argmax
    state per cluster, and what is needed to walk back from a bin to an assignment."""

    terms: Sequence[CostTerm]
    hubs: Sequence[str]
    clusters: Sequence[_Cluster]
    hub_widths: Tensor
    per: list[Tensor]
    args: list[Tensor]
    masked: Tensor  # (H, width): best value of the bins near the band, -inf elsewhere
    step: float

    def assignment(self, row: int, at: int) -> dict[str, int]:
        out = {u: int(self.hub_widths[row, j]) for j, u in enumerate(self.hubs)}
        for cluster, cost, arg in zip(
            reversed(self.clusters), reversed(self.per), reversed(self.args), strict=True
        ):
            s = int(arg[row, at])
            for j, u in enumerate(cluster.units):
                out[u] = int(cluster.states[s, j])
            at -= int(torch.round(cost[row, s] / self.step))
        return out

    def best_exact(
        self, row: int, lo: float, hi: float, *, above: float | None
    ) -> tuple[float, dict[str, int]] | None:
        """The best assignment of ``row`` whose exact cost is in the band (bins in order of
        value; none worth more than ``above`` is left out)."""
        values = self.masked[row]
        for b in torch.argsort(values, descending=True, stable=True).tolist():
            value = float(values[b])
            if not math.isfinite(value) or (above is not None and value <= above):
                return None
            candidate = self.assignment(row, b)
            if lo <= _exact(self.terms, candidate) <= hi:
                return value, candidate
        return None


def _dp(
    terms: Sequence[CostTerm],
    hubs: Sequence[str],
    clusters: Sequence[_Cluster],
    hub_widths: Tensor,
    hub_lp: Tensor,
    lo: float,
    hi: float,
    step: float,
) -> _Table:
    """Knapsack over the clusters for every hub assignment at once: for every (assignment,
    cost bin) the most probable choice of cluster states whose binned cost lands there."""
    neg = -math.inf
    h = hub_widths.shape[0]
    base, per = _costs(terms, hubs, clusters, hub_widths)
    slack = step * (len(clusters) + 1) / 2  # the binning error of a total, at most
    tops = torch.floor((hi + slack - base) / step).long()  # highest useful bin, per row
    width = int(tops.max().clamp(min=0)) + 1
    dp = torch.full((h, width), neg, dtype=torch.float64)
    dp[:, 0] = torch.where(tops >= 0, hub_lp, torch.full_like(hub_lp, neg))
    columns = torch.arange(width)
    args: list[Tensor] = []
    for cluster, cost in zip(clusters, per, strict=True):
        bins = torch.round(cost / step).long()  # (H, S)
        new = torch.full_like(dp, neg)
        arg = torch.zeros(h, width, dtype=torch.long)
        for chunk in torch.arange(bins.shape[1]).split(16):
            src = columns[None, None, :] - bins[:, chunk, None]  # (H, s, width)
            cand = dp.gather(1, src.clamp(min=0).reshape(h, -1)).reshape(src.shape)
            cand = torch.where(src >= 0, cand, neg) + cluster.log_prob[chunk][None, :, None]
            best, where = cand.max(1)
            better = best > new
            new = torch.where(better, best, new)
            arg = torch.where(better, chunk[where], arg)
        dp = new
        args.append(arg)
    lows = torch.ceil((lo - slack - base) / step).long()
    near = (columns[None, :] >= lows[:, None]) & (columns[None, :] <= tops[:, None])
    return _Table(terms, hubs, clusters, hub_widths, per, args, torch.where(near, dp, neg), step)
