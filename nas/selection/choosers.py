"""Choosing widths by scoring candidates on the supernet: evolution and greedy slimming.

Both search the grid of width choices inside the budget band (exact cost within
``target * (1 +- tolerance)``, as the search's projection delivers) and judge a candidate by its
one-shot validation loss (:class:`~nas.selection.candidates.CandidateScorer`).

* :func:`evolve` (OFA, MetaPruning): a population seeded with the search's projected argmax, the
  uniform width and samples of the learned Gumbel distribution (the search's logits are the
  prior); each generation keeps the better half and breeds the other half by uniform crossover of
  two parents and mutation of their units, every child repaired into the band by the dynamic
  program of the projection (the assignment of fewest choice steps from the child that lands in
  the band); the best candidate scored is returned.
* :func:`slim` (AutoSlim): from the full width, repeatedly narrow, by one choice, the unit whose
  narrowing costs the least validation loss per unit of cost saved, until the cost is in the band
  (a last step that would jump under it is repaired the same way).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from tqdm import tqdm

from nas.cost import ResolvedBudget, project_most_probable
from nas.cost.knapsack import most_probable_in_band
from nas.engine import EvalResult
from nas.errors import ConfigError
from nas.selection.candidates import CandidateScorer
from nas.selection.sampler import WidthSampler, as_dict
from predictors import GraphEncoder

__all__ = [
    "check_band",
    "evolve",
    "first_population",
    "flat_log_probs",
    "nearest_choice",
    "repair",
    "slim",
]


def flat_log_probs(choices: Mapping[str, Sequence[int]]) -> dict[str, Tensor]:
    """Equal (unnormalised) log-probabilities for every unit's choices: no preference."""
    return {u: torch.zeros(len(c)) for u, c in choices.items()}


def check_band(band: ResolvedBudget, method: str) -> None:
    """Refuse, before any work, a band that no assignment of the width choices reaches (exactly:
    the projection's dynamic program over the choices): the chooser ``method`` searches the grid
    of choices (only the projection's last resort sets a unit to a width off the grid, which the
    argmax may use but a search of the grid never finds on purpose)."""
    space = band.cost.space
    units = [(u.name, u.kind) for u in space.units]
    found = most_probable_in_band(
        band.cost.terms(), units, band.choices, flat_log_probs(band.choices), band.low, band.high
    )
    if found is None:
        full = band.cost.full()
        low = band.cost.exact({u: min(c) for u, c in band.choices.items()})
        what = "narrowing" if method == "greedy" else "candidate"
        raise ConfigError(
            f"--select {method}: no {what} of the width choices reaches the budget "
            f"({band.low / full:.1%}-{band.high / full:.1%} of the full {band.cost.unit}; the "
            f"choices reach {low / full:.1%}-100% in steps that skip this band): change the "
            "target, --tolerance or --width-ratios"
        )


def nearest_choice(options: Sequence[int], width: int) -> int:
    """Index of the choice nearest to ``width`` (the lower one on a tie)."""
    return min(range(len(options)), key=lambda k: (abs(options[k] - width), k))


def repair(widths: Mapping[str, int], band: ResolvedBudget) -> dict[str, int]:
    """``widths`` if they are in the band, else the assignment of the choices in the band with the
    fewest choice steps away from them (the projection's dynamic program, with the negative
    distance to each unit's current choice as its log-probability)."""
    if band.holds(widths):
        return dict(widths)
    near = {
        u: -(torch.arange(len(c), dtype=torch.float64) - nearest_choice(c, widths[u])).abs()
        for u, c in band.choices.items()
    }
    snapped = {u: c[nearest_choice(c, widths[u])] for u, c in band.choices.items()}
    return project_most_probable(
        band.cost, snapped, band.choices, near, band.target, band.tolerance
    )


def evolve(
    scorer: CandidateScorer,
    band: ResolvedBudget,
    seeds: Sequence[Mapping[str, int]],
    log_probs: Mapping[str, Tensor],
    *,
    population: int,
    generations: int,
    seed: int,
    mutation: float = 0.1,
    progress: bool = False,
) -> dict[str, int]:
    """The best candidate (lowest validation loss) of an evolution inside the band.

    ``seeds``: members of the first generation (the projected argmax, the uniform width),
    repaired into the band; of the rest, half are samples of ``log_probs`` (per unit, over
    ``band.choices``: the search's prior) repaired into the band, half are drawn uniformly among
    the assignments in the band (so that a decided distribution, whose samples are all its
    argmax, still starts a population that explores). The candidate returned lies in the band.
    Python's and torch's global random states are left untouched."""
    with torch.random.fork_rng(devices=[]):
        rng = random.Random(seed)
        gen = torch.Generator().manual_seed(seed)
        units = list(band.choices)
        pool = first_population(scorer, band, seeds, log_probs, population, gen)

        def add(widths: Mapping[str, int]) -> bool:
            key = scorer.key(widths)
            if key in pool:
                return False
            pool[key] = dict(widths)
            return True

        members = list(pool.values())
        bar = tqdm(total=generations + 1, desc="evolution", unit="generation", disable=not progress)
        scored = scorer.score_many(members)
        bar.update(1)
        for _ in range(generations):
            ranked = [m for _, m in sorted(zip(scored, members, strict=True), key=_by_loss)]
            parents = ranked[: max(1, population // 2)]
            children: list[dict[str, int]] = []
            for _ in range(50 * population):
                if len(parents) + len(children) >= population:
                    break
                a, b = rng.choice(parents), rng.choice(parents)
                child = {u: (a if rng.random() < 0.5 else b)[u] for u in units}
                _mutate(child, band.choices, rng, mutation)
                child = repair(child, band)
                if add(child):
                    children.append(child)
            members = parents + children
            scored = scorer.score_many(members)
            bar.update(1)
        bar.close()
        inside = [w for w in pool.values() if band.holds(w)]
        return min(inside, key=lambda w: _loss_key(scorer.score(w), w, scorer))


def first_population(
    scorer: CandidateScorer,
    band: ResolvedBudget,
    seeds: Sequence[Mapping[str, int]],
    log_probs: Mapping[str, Tensor],
    population: int,
    gen: torch.Generator,
) -> dict[tuple[int, ...], dict[str, int]]:
    """``population`` distinct candidates in the band, by key: ``seeds`` repaired into it, then
    half of the free places sampled from ``log_probs`` (the search's prior) and repaired, the
    rest drawn uniformly among the assignments in the band (a decided distribution, whose
    samples are all its argmax, still starts a population that explores)."""
    pool: dict[tuple[int, ...], dict[str, int]] = {}

    def add(widths: Mapping[str, int]) -> None:
        pool.setdefault(scorer.key(widths), dict(widths))

    for w in seeds:
        if len(pool) < population:
            add(repair(w, band))
    prior = population - (population - len(pool)) // 2  # the pool once the prior's half is in
    repaired: dict[tuple[int, ...], dict[str, int]] = {}  # a decided prior draws one assignment
    for _ in range(20 * population):
        if len(pool) >= prior:
            break
        drawn = {
            u: c[int(torch.multinomial(log_probs[u].exp(), 1, generator=gen))]
            for u, c in band.choices.items()
        }
        key = scorer.key(drawn)
        if key not in repaired:  # the projection's dynamic program once per distinct draw
            repaired[key] = repair(drawn, band)
        add(repaired[key])
    encoder = GraphEncoder.for_space(scorer.space)
    rest = WidthSampler(encoder, band.choices, band.cost).sample(
        population - len(pool),
        gen,
        band=(band.low, band.high),
        exclude=_rows(pool) if pool else None,
    )
    for row in rest:
        add(as_dict(encoder, row))
    return pool


def _rows(pool: Mapping[tuple[int, ...], Mapping[str, int]]) -> Tensor:
    """The pool's keys (widths in unit order) as rows ``(n, U)``."""
    return torch.tensor(list(pool), dtype=torch.int64).reshape(len(pool), -1)


def _mutate(
    child: dict[str, int], choices: Mapping[str, Sequence[int]], rng: random.Random, rate: float
) -> None:
    """Every unit moves to another choice with probability ``rate``; at least one unit does."""
    units = list(choices)
    forced = rng.choice(units)
    for u in units:
        if u == forced or rng.random() < rate:
            options = [c for c in choices[u] if c != child[u]]
            if options:
                child[u] = rng.choice(options)


def _by_loss(pair: tuple[EvalResult, dict[str, int]]) -> float:
    return pair[0].loss


def _loss_key(
    result: EvalResult, widths: Mapping[str, int], scorer: CandidateScorer
) -> tuple[float, float, tuple[int, ...]]:
    """Lowest loss first; ties by higher accuracy, then by widths (deterministic)."""
    return (result.loss, -result.accuracy, scorer.key(widths))


def slim(
    scorer: CandidateScorer, band: ResolvedBudget, *, progress: bool = False
) -> dict[str, int]:
    """AutoSlim's greedy slimming from the full width to the band (see the module)."""
    choices = band.choices
    index = {u: len(c) - 1 for u, c in choices.items()}

    def widths_at(idx: Mapping[str, int]) -> dict[str, int]:
        return {u: choices[u][k] for u, k in idx.items()}

    current = widths_at(index)
    cost = band.cost.exact(current)
    steps = sum(index.values())
    bar = tqdm(total=steps, desc="greedy slimming", unit="step", disable=not progress)
    while cost > band.high:
        base = scorer.score(current)
        best: tuple[float, str, float] | None = None  # (loss per cost saved, unit, new cost)
        landing: tuple[float, str, float] | None = None  # the best that stays >= the band
        for u, k in index.items():
            if k == 0:
                continue
            trial = {**current, u: choices[u][k - 1]}
            after = band.cost.exact(trial)
            if after >= cost:
                continue
            per = (scorer.score(trial).loss - base.loss) / (cost - after)
            if best is None or per < best[0]:
                best = (per, u, after)
            if after >= band.low and (landing is None or per < landing[0]):
                landing = (per, u, after)
        if best is None:
            raise ConfigError(
                "--select greedy: no narrowing of the width choices reaches the budget"
            )
        if best[2] < band.low and landing is not None:
            best = landing  # a step that stays at or above the band rather than under it
        _, step, cost = best
        index[step] -= 1
        current = widths_at(index)
        bar.update(1)
    bar.close()
    return repair(current, band)
