"""nas.selection.choosers: evolution and greedy slimming stay in the budget band and find what a
task with a known answer needs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from nas.cost import MacsCost, ResolvedBudget
from nas.errors import ConfigError
from nas.selection import CandidateScorer, check_band
from nas.selection.choosers import evolve, repair, slim
from nas.selection.nao import WidthCodec, optimise
from nas.supernet import Supernet
from nas.width_search import DEFAULT_WIDTH_RATIOS
from tests.conftest import random_widths, slow_params
from tests.nas.conftest import COARSE_RATIOS, ESSENTIAL, attached, choices_of, known_answer_task

pytestmark = pytest.mark.usefixtures("one_thread")


def flat(band: ResolvedBudget) -> dict[str, torch.Tensor]:
    return {u: torch.zeros(len(c)) for u, c in band.choices.items()}


def run_evolution(scorer: CandidateScorer, band: ResolvedBudget, seed: int = 0) -> dict[str, int]:
    uniform = scorer.space.uniform_widths_for_macs(band.target / scorer.space.macs())
    return evolve(scorer, band, [uniform], flat(band), population=8, generations=3, seed=seed)


def run_nao(scorer: CandidateScorer, band: ResolvedBudget, seed: int = 0) -> dict[str, int]:
    uniform = scorer.space.uniform_widths_for_macs(band.target / scorer.space.macs())
    return optimise(scorer, band, [uniform], flat(band), population=8, rounds=3, seed=seed)


def run_greedy(scorer: CandidateScorer, band: ResolvedBudget, seed: int = 0) -> dict[str, int]:
    return slim(scorer, band)


CHOOSERS: dict[str, Callable[[CandidateScorer, ResolvedBudget, int], dict[str, int]]] = {
    "evolution": run_evolution,
    "nao": run_nao,
    "greedy": run_greedy,
}


def random_setup(
    seed: int, ratios: tuple[float, ...] = DEFAULT_WIDTH_RATIOS
) -> tuple[CandidateScorer, ResolvedBudget]:
    supernet, _ = attached("resnet20_b", seed)
    space = supernet.space
    g = torch.Generator().manual_seed(seed)
    data = [
        (torch.randn(8, space.in_channels, *space.input_size, generator=g), torch.arange(8) % 4)
        for _ in range(2)
    ]
    scorer = CandidateScorer(supernet, data, data, "cpu")
    band = ResolvedBudget(0.3 * space.macs(), 0.02, MacsCost(space), choices_of(space, ratios))
    return scorer, band


def _ratios(chooser: str) -> tuple[float, ...]:
    """Greedy slimming scores every narrowing at every step: coarser choices keep it quick."""
    return COARSE_RATIOS if chooser == "greedy" else DEFAULT_WIDTH_RATIOS


# greedy slimming scores hundreds of candidates: slow
SLOW_CHOOSERS = {"greedy"}


@pytest.mark.parametrize("name", slow_params(CHOOSERS, SLOW_CHOOSERS))
def test_a_chooser_stays_inside_the_mac_band_on_the_width_choices(name: str) -> None:
    scorer, band = random_setup(0, _ratios(name))
    widths = CHOOSERS[name](scorer, band, 0)
    assert band.holds(widths)
    assert all(widths[u] in c for u, c in band.choices.items())
    assert scorer.scored >= 2


@pytest.mark.parametrize("name", slow_params(CHOOSERS, SLOW_CHOOSERS))
def test_a_chooser_keeps_the_essential_unit_wide_and_cuts_the_useless_ones(name: str) -> None:
    """On a network whose every residual branch is switched off but one (labels: its own
    decisions), scoring candidates finds that only that unit's width matters."""
    space, model, train, val = known_answer_task()
    supernet = Supernet(model, space)
    scorer = CandidateScorer(supernet, list(train), val, "cpu")
    band = ResolvedBudget(
        0.35 * space.macs(), 0.02, MacsCost(space), choices_of(space, _ratios(name))
    )
    widths = CHOOSERS[name](scorer, band, 0)
    assert band.holds(widths)
    maximum = space.max_widths
    assert widths[ESSENTIAL] >= 0.65 * maximum[ESSENTIAL], widths
    uniform = space.uniform_widths_for_macs(0.35)
    assert scorer.score(widths).loss < scorer.score(uniform).loss  # better than uniform width


@pytest.mark.slow
def test_a_decided_distribution_still_starts_a_population_that_explores() -> None:
    """After a sandwich search the distribution is nearly one-hot: its samples are all the
    argmax. The first generation must still hold ``population`` distinct candidates in the band,
    and the returned one lies in the band even when a seed (a uniform width off the grid) does
    not."""
    scorer, band = random_setup(0)
    space = scorer.space
    decided = {u: torch.tensor([-50.0] * (len(c) - 1) + [0.0]) for u, c in band.choices.items()}
    off_band = space.uniform_widths_for_macs(0.9)  # far outside the band: repaired into it
    widths = evolve(scorer, band, [off_band], decided, population=8, generations=0, seed=0)
    assert scorer.scored == 8  # eight distinct candidates scored
    assert band.holds(widths)
    assert all(
        band.holds(dict(zip([u.name for u in space.units], key, strict=True)))
        for key in scorer.cache
    )


@pytest.mark.slow
def test_evolution_is_reproducible_from_its_seed_and_draws_nothing_from_global_generators() -> None:
    scorer, band = random_setup(1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = run_evolution(scorer, band, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    again, _ = random_setup(1)
    assert run_evolution(again, band, seed=5) == first


@pytest.mark.parametrize("seed", range(5))
def test_repair_moves_widths_into_the_band_and_leaves_those_inside(seed: int) -> None:
    scorer, band = random_setup(0)
    space = scorer.space
    widths = random_widths(space, seed)
    fixed = repair(widths, band)
    assert band.holds(fixed)
    assert repair(fixed, band) == fixed


def test_a_band_no_assignment_reaches_is_refused() -> None:
    supernet, _ = attached("resnet20_b", 0)
    space = supernet.space
    choices = {u.name: [u.max_width] for u in space.units}  # only the full network
    with pytest.raises(ConfigError, match="--select greedy: no narrowing"):
        check_band(ResolvedBudget(0.5 * space.macs(), 0.02, MacsCost(space), choices), "greedy")
    check_band(ResolvedBudget(space.macs(), 0.02, MacsCost(space), choices), "greedy")  # reachable


def test_nao_decodes_what_it_encodes_and_its_steps_climb_the_predictor() -> None:
    """Fitted to scores that rise with one unit's width, the codec reconstructs the
    assignments it saw, and a step up the predictor's gradient widens that unit."""
    _, band = random_setup(0)
    torch.manual_seed(0)
    codec = WidthCodec(band.choices)
    g = torch.Generator().manual_seed(0)
    indices = torch.stack(
        [torch.randint(len(c), (40,), generator=g) for c in band.choices.values()], 1
    )
    first = next(iter(band.choices))
    score = indices[:, 0].float()  # the first unit's width is all that matters
    codec.fit(indices, (score - score.mean()) / score.std(), steps=600)
    with torch.no_grad():
        decoded = codec.widths(codec.encoder(codec.one_hot(indices)))
    assert decoded == [
        {u: band.choices[u][int(k)] for u, k in zip(band.choices, row, strict=True)}
        for row in indices
    ]
    narrow = indices[indices[:, 0] == 0][:3]  # the narrowest choice of the first unit
    moved = codec.improve(narrow)
    assert all(m[first] > band.choices[first][0] for m in moved)


@pytest.mark.slow
def test_nao_is_reproducible_from_its_seed_and_draws_nothing_from_global_generators() -> None:
    scorer, band = random_setup(1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = run_nao(scorer, band, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    again, _ = random_setup(1)
    assert run_nao(again, band, seed=5) == first
