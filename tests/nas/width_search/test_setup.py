"""nas.width_search.setup: a search's budget resolved once, its width choices and strategy."""

from __future__ import annotations

import pytest
import torch

import search_spaces
from nas.cost import MacsCost, ResolvedBudget
from nas.errors import ConfigError
from nas.gates import STRATEGIES
from nas.width_search import SearchConfig, search_budget
from nas.width_search.setup import create_strategy, strategy_choices, width_choices


def test_the_budget_is_resolved_into_one_immutable_object() -> None:
    space = search_spaces.create("resnet20")
    budget = search_budget(SearchConfig(target_macs="0.5", tolerance=0.03), space)
    assert isinstance(budget, ResolvedBudget) and isinstance(budget.cost, MacsCost)
    assert budget.target == pytest.approx(0.5 * space.macs())
    assert budget.target_macs == budget.target and budget.ratio == pytest.approx(0.5)
    assert (budget.low, budget.high) == pytest.approx((0.485 * space.macs(), 0.515 * space.macs()))
    smallest = {u: min(c) for u, c in budget.choices.items()}
    assert budget.floor == space.macs(smallest)
    with pytest.raises(AttributeError):
        budget.target = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        budget.choices["stem"] = (1,)  # type: ignore[index]
    absolute = search_budget(SearchConfig(target_macs="10M"), space)
    assert absolute.target == 10e6


def test_a_target_below_the_smallest_network_is_refused() -> None:
    space = search_spaces.create("resnet20")
    config = SearchConfig(target_macs="0.001")
    floor = space.macs({u: min(c) for u, c in width_choices(config, space).items()})
    assert 0 < floor < space.macs()
    with pytest.raises(ConfigError, match="below the smallest network the width choices allow"):
        search_budget(config, space)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_a_strategy_s_choices_are_known_without_building_it(name: str) -> None:
    """What the budget's floor and the choosers use equals what the built strategy picks from,
    and knowing it draws no random numbers."""
    space = search_spaces.create("resnet20")
    config = SearchConfig(strategy=name)
    state = torch.random.get_rng_state()
    known = strategy_choices(config, space)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert known == create_strategy(config, space).choices
    assert {u: list(c) for u, c in search_budget(config, space).choices.items()} == known
