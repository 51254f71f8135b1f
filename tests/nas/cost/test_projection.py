"""nas.cost.projection: bringing the found widths into the budget band."""

from __future__ import annotations

import math
import random

import pytest
import torch

import search_spaces
from nas.cost import MacsCost, project_to_budget
from nas.errors import ConfigError
from nas.supernet import width_choices
from nas.width_search import DEFAULT_WIDTH_RATIOS, MIN_TOLERANCE, SearchConfig
from search_spaces import SearchSpace
from tests.nas.conftest import choices_of


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
    projected = project_to_budget(
        MacsCost(space), widths, choices, log_probs, target, tolerance=0.02
    )
    check_projected(space, projected, target, 0.02)
    # greedy steps stay on the width choices; at most one unit gets an off-choice width
    off = [u for u, w in projected.items() if w not in choices[u] and w != widths[u]]
    assert len(off) <= 1, off


def test_projection_keeps_widths_already_in_the_band() -> None:
    space = search_spaces.create("resnet20_b")
    choices = choices_of(space)
    widths = space.uniform_widths_for_macs(0.5)
    target = float(space.macs(widths))
    same = project_to_budget(MacsCost(space), widths, choices, uniform_log_probs(choices), target)
    assert same == widths


def test_projection_shrinks_the_least_probable_units_first() -> None:
    space = search_spaces.create("resnet20")
    choices = choices_of(space)
    favourite = "layer3.0.conv1"
    log_probs = uniform_log_probs(choices)
    log_probs[favourite] = torch.log_softmax(torch.tensor([-50.0] * 9 + [0.0]), dim=0)
    target = 0.75 * space.macs()
    projected = project_to_budget(MacsCost(space), space.full_widths(), choices, log_probs, target)
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
        projected = project_to_budget(
            MacsCost(space), widths, choices, log_probs, goal, MIN_TOLERANCE
        )
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
            MacsCost(space),
            space.full_widths(),
            choices,
            uniform_log_probs(choices),
            0.001 * space.macs(),
        )
