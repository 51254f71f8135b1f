"""Distinct width assignments on the grid of width choices: uniform, or in a cost band (MACs,
or another cost model's unit such as predicted latency)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from nas.errors import ConfigError
from nas.selection.config import RankConfig
from predictors import GraphEncoder
from search_spaces import SearchSpace

if TYPE_CHECKING:
    from nas.cost import CostModel

__all__ = [
    "WidthSampler",
    "as_dict",
    "check_pool_band",
    "other_than_macs",
    "pool_band",
    "sample_pool",
    "sample_widths",
    "scoring_band",
]


# -- sampling --------------------------------------------------------------------------------------
def other_than_macs(cost: CostModel | None) -> CostModel | None:
    """``cost`` unless it counts MACs (None then): MACs are priced by the encoder's own exact
    formula, on integers."""
    return None if cost is None or cost.name == "macs" else cost


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny tensors (sampling, the GCN's fit): one thread is as fast and never stalls on a busy
    machine, where more threads can be many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class WidthSampler:
    """Distinct width assignments on the grid of width choices: uniform, or in a cost band.

    Band sampling needs no rejection over the whole space: it lands in narrow bands at any
    budget the grid reaches, and finds every assignment of a small band (the tests compare with
    enumeration near the smallest and the full network). For each candidate, vectorised over a
    batch:

    1. per-unit positions ``t ~ U[0, 1)`` and a MAC level uniform in the band are drawn;
    2. all positions are shifted together by ``s`` (unit index ``floor((t + s) * K)``, clamped to
       the unit's ``K`` choices; ``s = -1`` is the smallest network, ``s = 1`` the full one), and
       ``s`` is bisected to the largest value whose MACs stay under the level (MACs grow with
       ``s``);
    3. random single-unit steps (one choice up or down) are accepted while they keep the candidate
       in the band, or move one that is still under it upwards without passing the band: this
       lands candidates whose last shift step jumped over a narrow band, and mixes the widths.

    The cost is exact MACs (:meth:`GraphEncoder.macs`, the space's one formula) unless a
    ``cost`` model is given (its :meth:`~nas.cost.CostModel.batched` prices; the steps above
    need it to grow with the widths, as MACs and measured latencies do). Sampling
    stops once ``n`` distinct assignments are found, or when three successive batches add none:
    the band then holds fewer than ``n`` on the grid (near the smallest network or the full one)
    and all that were found are returned, possibly none.
    """

    batch = 4096
    bisection_steps = 24
    patience = 3
    max_batches = 64

    def __init__(
        self,
        encoder: GraphEncoder,
        choices: Mapping[str, Sequence[int]],
        cost: CostModel | None = None,
    ) -> None:
        self.encoder = encoder
        priced = other_than_macs(cost)
        self._price: Callable[[Tensor], Tensor] = (
            encoder.macs if priced is None else lambda w: priced.batched(w)
        )
        names = [u.name for u in encoder.space.units]
        lists = [sorted({int(w) for w in choices[u]}) for u in names]
        widest = max(len(c) for c in lists)
        self.counts = torch.tensor([len(c) for c in lists])
        self.table = torch.tensor([c + [c[-1]] * (widest - len(c)) for c in lists])  # (U, K)
        self._units = torch.arange(len(lists))
        ends = torch.stack([torch.zeros_like(self.counts), self.counts - 1])
        low, high = self._cost(ends).tolist()
        self.min_cost: float = low
        self.max_cost: float = high

    def widths(self, index: Tensor) -> Tensor:
        """Choice indices ``(B, U)`` as widths ``(B, U)``."""
        return self.table[self._units, index]

    def _cost(self, index: Tensor) -> Tensor:
        return self._price(self.widths(index))

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        *,
        band: tuple[float, float] | None = None,
        exclude: Tensor | None = None,
    ) -> Tensor:
        """Up to ``n`` distinct widths ``(m, U)`` (int64, ``m <= n``), uniform over the choices
        or with exact costs in ``band = (low, high)``; none of the rows of ``exclude``."""
        seen = {tuple(r) for r in exclude.tolist()} if exclude is not None else set()
        rows: list[list[int]] = []
        stale = 0
        with _one_thread():
            for _ in range(self.max_batches):
                if len(rows) >= n or stale >= self.patience:
                    break
                size = min(self.batch, max(256, 2 * (n - len(rows))))
                found = len(rows)
                for row in self.widths(self._draw(size, generator, band)).tolist():
                    key = tuple(row)
                    if key not in seen:
                        seen.add(key)
                        rows.append(row)
                        if len(rows) == n:
                            break
                stale = stale + 1 if len(rows) == found else 0
        return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), len(self.counts))

    def _draw(
        self, size: int, generator: torch.Generator, band: tuple[float, float] | None
    ) -> Tensor:
        """Choice indices of ``size`` draws; with a band, only those that landed in it."""
        u = len(self.counts)
        k = self.counts.double()
        t = torch.rand(size, u, generator=generator, dtype=torch.float64)
        if band is None:
            return (t * k).long()
        low, high = band
        if self.min_cost > high or self.max_cost < low:
            return torch.zeros(0, u, dtype=torch.int64)
        level = low + torch.rand(size, generator=generator, dtype=torch.float64) * (high - low)
        top = self.counts - 1

        def shifted(s: Tensor) -> Tensor:
            return torch.floor((t + s) * k).long().clamp_(min=0).minimum(top)

        below = torch.full((size, 1), -1.0, dtype=torch.float64)  # MACs(below) <= level
        above = torch.ones(size, 1, dtype=torch.float64)
        for _ in range(self.bisection_steps):
            mid = (below + above) / 2
            ok = (self._cost(shifted(mid)) <= level)[:, None]
            below = torch.where(ok, mid, below)
            above = torch.where(ok, above, mid)
        index = shifted(below)
        macs = self._cost(index)
        rows = torch.arange(size)
        for _ in range(max(16, u)):
            unit = torch.randint(u, (size,), generator=generator)
            up_down = torch.randint(2, (size,), generator=generator) * 2 - 1
            step = torch.where(macs < low, 1, up_down)
            moved = index.clone()
            moved[rows, unit] = (index[rows, unit] + step).clamp(min=0).minimum(top[unit])
            new = self._cost(moved)
            accept = (new <= high) & ((new >= low) | (macs < low))
            index = torch.where(accept[:, None], moved, index)
            macs = torch.where(accept, new, macs)
        return index[(macs >= low) & (macs <= high)]


def sample_widths(
    encoder: GraphEncoder,
    choices: Mapping[str, Sequence[int]],
    n: int,
    generator: torch.Generator,
    *,
    band: tuple[float, float] | None = None,
    exclude: Tensor | None = None,
    cost: CostModel | None = None,
) -> Tensor:
    """Up to ``n`` distinct width assignments (rows of ``(m, U)``, unit order), uniform over the
    choices or with exact costs (MACs, or ``cost``'s) in ``band = (low, high)``; see
    :class:`WidthSampler`."""
    return WidthSampler(encoder, choices, cost).sample(n, generator, band=band, exclude=exclude)


def pool_band(target: float, tolerance: float) -> tuple[float, float]:
    """Costs of the candidates: under the budget, by at most ``tolerance``."""
    return target * (1 - tolerance), target


def scoring_band(target: float, config: RankConfig) -> tuple[float, float] | None:
    """Costs of the scored (and held-out) sub-networks: ``target * (1 +- band)``, or None for
    uniform sampling."""
    if config.sampling != "band":
        return None
    return target * (1 - config.band), target * (1 + config.band)


def sample_pool(
    encoder: GraphEncoder,
    choices: Mapping[str, Sequence[int]],
    target: float,
    tolerance: float,
    config: RankConfig,
    *,
    limit: int | None = None,
    cost: CostModel | None = None,
) -> Tensor:
    """The candidates the predictor ranks: up to ``config.pool`` (or ``limit``) distinct
    assignments with costs (MACs, or ``cost``'s, ``target`` in its unit) in :func:`pool_band`
    (fewer where the grid holds fewer); refuses a band it cannot reach."""
    cost = other_than_macs(cost)
    sampler = WidthSampler(encoder, choices, cost)
    low, high = pool_band(target, tolerance)
    gen = torch.Generator().manual_seed(config.seed + 1)
    pool = sampler.sample(limit or config.pool, gen, band=(low, high))
    if len(pool) == 0:
        full = encoder.space.macs() if cost is None else cost.full()
        what, flag = ("MACs", "--target-macs") if cost is None else (cost.unit, "--target-latency")
        raise ConfigError(
            f"no sub-network of the width choices has {what} in [{low:,.4g}, {high:,.4g}] "
            f"(at most {tolerance:.1%} under the budget of {target / full:.1%} of full; the "
            f"choices reach {sampler.min_cost / full:.1%}-100%): change the search's "
            f"{flag}, --tolerance or --width-ratios"
        )
    return pool


def check_pool_band(
    space: SearchSpace,
    choices: Mapping[str, Sequence[int]],
    target: float,
    tolerance: float,
    config: RankConfig,
    cost: CostModel | None = None,
) -> None:
    """Refuse, before any work, a budget whose pool band holds no sub-network of the width
    choices (a search with predictor selection would find out only at its end)."""
    encoder = GraphEncoder.for_space(space)
    sample_pool(encoder, choices, target, tolerance, config, limit=1, cost=cost)


def as_dict(encoder: GraphEncoder, row: Tensor) -> dict[str, int]:
    return {u.name: int(w) for u, w in zip(encoder.space.units, row, strict=True)}
