"""The compute budget: expected MACs, temperature schedule, target parsing, budget loss and the
projection of the found widths onto the budget."""

from __future__ import annotations

import itertools
import math
import random

import pytest
import torch

import search_spaces
from nas.cost import budget_loss, parse_target_macs, project_to_budget, smallest_macs
from nas.errors import ConfigError
from nas.gates import SCHEDULES, WidthGumbel, temperature
from nas.supernet import width_choices
from nas.width_search import DEFAULT_WIDTH_RATIOS, MIN_TOLERANCE, SearchConfig
from search_spaces import SearchSpace
from tests.conftest import small_space

# a CIFAR option-A space (block units only), option B (coupled stage units), torchvision basic
# blocks (stem coupled into layer1) and bottlenecks (separate stem unit, two convs per block)
BUDGET_SPACES = ["resnet20", "resnet20_b", "resnet18", "resnet50"]


def choices_of(space: SearchSpace) -> dict[str, list[int]]:
    return {u.name: width_choices(u.max_width, DEFAULT_WIDTH_RATIOS) for u in space.units}


# -- expected MACs -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUDGET_SPACES)
def test_expected_macs_of_a_one_hot_strategy_are_the_exact_macs(name: str) -> None:
    space = small_space(name)
    strategy = WidthGumbel(space, choices_of(space)).double()
    g = torch.Generator().manual_seed(3)
    picked: dict[str, int] = {}
    with torch.no_grad():
        for unit, logits in zip(strategy.units, strategy.logits, strict=True):
            k = int(torch.randint(len(logits), (1,), generator=g))
            logits.zero_()
            logits[k] = 50.0
            picked[unit] = strategy.choices[unit][k]
    assert len(set(picked.values())) > 1  # not trivially the full or the uniform network
    expected = space.expected_macs(strategy.expected_widths())
    exact = space.macs(picked)
    assert exact < space.macs()
    assert expected.item() == pytest.approx(exact, rel=1e-9, abs=1e-3)
    assert strategy.discrete_widths() == picked


@pytest.mark.parametrize("name", BUDGET_SPACES)
def test_expected_macs_gradient_points_towards_larger_widths(name: str) -> None:
    space = small_space(name)
    strategy = WidthGumbel(space, choices_of(space))
    with torch.no_grad():
        for logits in strategy.logits:
            logits.zero_()  # uniform distributions
    expected = space.expected_macs(strategy.expected_widths())
    expected.backward()
    for unit, logits in zip(strategy.units, strategy.logits, strict=True):
        grad = logits.grad
        assert grad is not None, unit
        assert grad[-1] > 0, unit  # more mass on the widest choice: more MACs
        assert grad[0] < 0, unit  # more mass on the narrowest choice: fewer MACs
        # choices below the mean width have negative, above it positive derivatives
        widths = torch.tensor(strategy.choices[unit], dtype=torch.float)
        assert torch.equal(grad > 0, widths > widths.mean()), unit

    # and a finite step along the largest logit of one unit really raises the expected MACs
    before = expected.item()
    with torch.no_grad():
        strategy.logits[0][-1] += 0.5
    assert space.expected_macs(strategy.expected_widths()).item() > before


# -- temperature schedule ------------------------------------------------------------------------
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("total", [2, 10, 37])
def test_temperature_anneals_from_tau0_to_tau_min(schedule: str, total: int) -> None:
    tau0, tau_min = 5.0, 0.1
    taus = [temperature(step, total, tau0, tau_min, schedule) for step in range(total)]
    assert taus[0] == pytest.approx(tau0)
    assert taus[-1] == pytest.approx(tau_min)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(taus))
    assert all(tau_min - 1e-12 <= t <= tau0 + 1e-12 for t in taus)
    # past the end it stays at the final temperature
    assert temperature(total + 5, total, tau0, tau_min, schedule) == pytest.approx(tau_min)


def test_temperature_schedules_differ_in_between() -> None:
    mid = {s: temperature(5, 11, 4.0, 0.25, s) for s in SCHEDULES}
    assert mid["linear"] == pytest.approx((4.0 + 0.25) / 2)
    assert mid["cosine"] == pytest.approx((4.0 + 0.25) / 2)
    assert mid["exponential"] == pytest.approx(math.sqrt(4.0 * 0.25))


def test_unknown_schedule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        temperature(0, 10, 5.0, 0.1, "nope")
    with pytest.raises(ConfigError, match="nope"):
        SearchConfig(schedule="nope").validate()


# -- target parsing ------------------------------------------------------------------------------
FULL = 4_100_000_000  # about a ResNet-50 at 224 px


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5", 0.5 * FULL),
        (0.5, 0.5 * FULL),
        ("1", FULL),
        (" 0.25 ", 0.25 * FULL),
        ("60M", 60e6),
        ("60m", 60e6),
        ("1.2G", 1.2e9),
        ("500k", 500e3),
        ("500K", 500e3),
        ("4.1G", FULL),
    ],
)
def test_parse_target_macs(text: str | float, expected: float) -> None:
    assert parse_target_macs(text, FULL) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "", "10G", "0M", "0.5X", "5e9k"])
def test_parse_target_macs_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="target-macs"):
        parse_target_macs(text, FULL)


def test_target_below_the_smallest_network_is_refused() -> None:
    space = search_spaces.create("resnet20")
    config = SearchConfig(target_macs="0.001")
    floor = smallest_macs(space, config.choices(space))
    assert 0 < floor < space.macs()
    with pytest.raises(ConfigError, match="smallest"):
        config.target_for(space)
    assert SearchConfig(target_macs="0.5").target_for(space) == pytest.approx(0.5 * space.macs())


# -- budget loss ---------------------------------------------------------------------------------
def budget_grad(expected: float, discrete: float, target: float = 100.0) -> tuple[float, float]:
    e = torch.tensor(expected, requires_grad=True)
    loss = budget_loss(e, discrete, target, band=0.05)
    loss.backward()
    assert e.grad is not None
    return loss.item(), e.grad.item()


def test_budget_loss_pushes_down_when_over_the_target() -> None:
    loss, grad = budget_grad(150.0, 150.0)
    assert loss == pytest.approx(math.log(1.5))
    assert grad > 0  # gradient descent lowers the expected MACs
    # the direction follows the discrete (argmax) network, even if the expectation is under
    _, grad = budget_grad(80.0, 120.0)
    assert grad > 0


def test_budget_loss_pushes_up_when_far_under_the_target() -> None:
    loss, grad = budget_grad(50.0, 50.0)
    assert loss == pytest.approx(-math.log(0.5))
    assert grad < 0  # gradient descent raises the expected MACs
    _, grad = budget_grad(120.0, 80.0)
    assert grad < 0


@pytest.mark.parametrize("discrete", [95.0, 97.0, 100.0])
def test_budget_loss_idles_inside_the_band(discrete: float) -> None:
    loss, grad = budget_grad(98.0, discrete)
    assert loss == 0.0 and grad == 0.0


# -- projection onto the budget --------------------------------------------------------------------
def uniform_log_probs(choices: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {u: torch.full((len(c),), -math.log(len(c))) for u, c in choices.items()}


def check_projected(space: SearchSpace, widths: dict[str, int], target: float, tol: float) -> None:
    macs = space.macs(widths)
    assert target * (1 - tol) <= macs <= target * (1 + tol), (macs / target, widths)
    assert set(widths) == set(space.max_widths)
    for unit, w in widths.items():
        assert isinstance(w, int) and 1 <= w <= space.max_widths[unit], (unit, w)
    space.check_widths(widths)  # a valid width assignment


@pytest.mark.parametrize("name", ["resnet20", "resnet20_b"])
@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("start", ["full", "tiny", "smallest_choice"])
def test_projection_lands_in_the_band(name: str, ratio: float, start: str) -> None:
    space = search_spaces.create(name)
    choices = choices_of(space)
    widths = {
        "full": space.full_widths(),
        "tiny": {u: 1 for u in space.max_widths},
        "smallest_choice": {u: c[0] for u, c in choices.items()},
    }[start]
    g = torch.Generator().manual_seed(int(ratio * 100))
    log_probs = {
        u: torch.log_softmax(torch.randn(len(c), generator=g), dim=0) for u, c in choices.items()
    }
    target = ratio * space.macs()
    projected = project_to_budget(space, widths, choices, log_probs, target, tolerance=0.02)
    check_projected(space, projected, target, 0.02)
    # greedy steps stay on the width choices; at most one unit gets an off-choice width
    off = [u for u, w in projected.items() if w not in choices[u] and w != widths[u]]
    assert len(off) <= 1, off


def test_projection_keeps_widths_already_in_the_band() -> None:
    space = search_spaces.create("resnet20_b")
    choices = choices_of(space)
    widths = space.uniform_widths_for_macs(0.5)
    target = float(space.macs(widths))
    same = project_to_budget(space, widths, choices, uniform_log_probs(choices), target)
    assert same == widths


def test_projection_shrinks_the_least_probable_units_first() -> None:
    space = search_spaces.create("resnet20")
    choices = choices_of(space)
    favourite = "layer3.0.conv1"
    log_probs = uniform_log_probs(choices)
    log_probs[favourite] = torch.log_softmax(torch.tensor([-50.0] * 9 + [0.0]), dim=0)
    target = 0.75 * space.macs()
    projected = project_to_budget(space, space.full_widths(), choices, log_probs, target)
    check_projected(space, projected, target, 0.02)
    assert projected[favourite] == space.max_widths[favourite]


@pytest.mark.parametrize(
    ("name", "ratios", "target"),
    [
        ("resnet20_b", (0.5, 1.0), 0.7),  # coarse choices: greedy steps land far off
        ("resnet20", DEFAULT_WIDTH_RATIOS, 0.12),  # just above the smallest network (11.5 %)
        ("resnet20", DEFAULT_WIDTH_RATIOS, 0.5),
    ],
)
def test_projection_reaches_the_narrowest_accepted_tolerance(
    name: str, ratios: tuple[float, ...], target: float
) -> None:
    """``SearchConfig`` accepts tolerances down to MIN_TOLERANCE: from any argmax widths and
    logits the projection must then land in the band (no search may end in 'no widths reach'
    after hours of training). With coarse width choices one unit alone cannot always land, so
    two units are adjusted together."""
    space = search_spaces.create(name)
    choices = {u.name: width_choices(u.max_width, ratios) for u in space.units}
    goal = target * space.macs()
    rnd, g = random.Random(0), torch.Generator().manual_seed(0)
    for _ in range(40):
        widths = {u: rnd.choice(c) for u, c in choices.items()}
        log_probs = {
            u: torch.log_softmax(3 * torch.randn(len(c), generator=g), dim=0)
            for u, c in choices.items()
        }
        projected = project_to_budget(space, widths, choices, log_probs, goal, MIN_TOLERANCE)
        check_projected(space, projected, goal, MIN_TOLERANCE)
        off = [u for u, w in projected.items() if w not in choices[u] and w != widths[u]]
        assert len(off) <= 2, off
    with pytest.raises(ConfigError, match="--tolerance"):
        SearchConfig(tolerance=MIN_TOLERANCE / 2).validate()


def test_projection_refuses_unreachable_targets() -> None:
    space = search_spaces.create("resnet20")
    choices = choices_of(space)
    with pytest.raises(ConfigError, match="no widths reach"):
        project_to_budget(
            space,
            space.full_widths(),
            choices,
            uniform_log_probs(choices),
            0.001 * space.macs(),
        )
