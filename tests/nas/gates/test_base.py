"""nas.gates.base: the strategy registry and the GateStrategy interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
import torch
from torch import Tensor

from nas.errors import ConfigError
from nas.gates import (
    STRATEGIES,
    GateStrategy,
    WidthGumbel,
    create_strategy,
    list_strategies,
    register_strategy,
    strategy_class,
)
from nas.supernet import nested_masks
from nas.width_search import SearchConfig
from search_spaces import SearchSpace
from tests.conftest import small_space
from tests.nas.conftest import attached, choices_of


class FixedHalf(GateStrategy):
    """A strategy without parameters: every unit at half width."""

    name = "fixed-half"

    def masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        return {u: nested_masks([self._half(u)], self.space.max_widths[u])[0] for u in self.units}

    def expected_widths(self) -> dict[str, Tensor]:
        return {u: torch.tensor(float(self._half(u))) for u in self.units}

    def choice_log_probs(self) -> dict[str, Tensor]:
        return {
            u: torch.tensor([0.0 if c == self._half(u) else -1e9 for c in self.choices[u]])
            for u in self.units
        }

    def _half(self, unit: str) -> int:
        return min(self.choices[unit], key=lambda c: abs(c - self.space.max_widths[unit] / 2))


def test_registry_refuses_duplicates_and_unknown_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))
    assert "width-gumbel" in list_strategies()
    with pytest.raises(ConfigError, match="already registered"):
        register_strategy("width-gumbel", WidthGumbel)
    space = small_space("resnet20")
    with pytest.raises(ConfigError, match="nope") as info:
        create_strategy("nope", space, choices_of(space))
    assert "width-gumbel" in str(info.value)  # the message lists the choices
    with pytest.raises(ConfigError, match="nope"):
        STRATEGIES.get("nope")
    with pytest.raises(ConfigError, match="nope"):
        SearchConfig(strategy="nope").validate()

    def factory(space: SearchSpace, choices: Mapping[str, Sequence[int]]) -> GateStrategy:
        return FixedHalf(space, choices)

    register_strategy(FixedHalf.name, factory)
    assert FixedHalf.name in list_strategies()
    assert strategy_class(FixedHalf.name) is GateStrategy  # its annotation names the base
    created = create_strategy(FixedHalf.name, space, choices_of(space))
    assert isinstance(created, FixedHalf)
    with pytest.raises(ConfigError, match="already registered"):
        register_strategy(FixedHalf.name, factory)
    SearchConfig(strategy=FixedHalf.name).validate()
    # a parameter-free strategy still gives a budget-loss device and the projection's inputs
    assert created.regularizer().item() == 0.0
    assert created.discrete_widths() == {u: created._half(u) for u in created.units}


def test_create_strategy_returns_a_width_gumbel() -> None:
    space = small_space("resnet20_b")
    strategy = create_strategy("width-gumbel", space, choices_of(space))
    assert isinstance(strategy, WidthGumbel)
    assert strategy.units == [u.name for u in space.units]


def test_unattached_strategy_has_no_supernet() -> None:
    space = small_space("resnet20")
    strategy = WidthGumbel(space, choices_of(space))
    with pytest.raises(RuntimeError, match="not attached"):
        strategy.gate("discrete", 1.0)


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_registered_strategy_gates_the_supernet(name: str) -> None:
    """What the search loop, the budget and extraction rely on, for each strategy."""
    space = small_space("resnet20_b", num_classes=4)
    choices = choices_of(space)
    supernet, _ = attached("resnet20_b")
    strategy = create_strategy(name, supernet.space, choices)
    strategy.attach(supernet)
    # what it declares of itself, as typed class attributes, is what it does
    kind = strategy_class(name)
    assert isinstance(strategy, kind)
    overrides = type(strategy).budget_loss is not GateStrategy.budget_loss
    assert kind.own_budget == overrides
    assert isinstance(strategy.group_size, int) and strategy.group_size >= 1
    assert kind.choices_for(space, choices_of(space)) == strategy.choices  # known unbuilt
    choices = strategy.choices  # the width ratios' choices, or the strategy's own (its groups)
    x = torch.randn(3, space.in_channels, *space.input_size)
    for mode in ("sample", "hard", "relaxed", "discrete"):
        masks = strategy.masks(mode, tau=1.0)
        for unit in strategy.units:
            m = masks[unit]
            assert m.shape[-1] == space.max_widths[unit]
            assert bool(((m >= 0) & (m <= 1 + 1e-6)).all())
        strategy.gate(mode, tau=1.0)
        assert supernet(x).shape == (3, 4)
    supernet.set_masks(None)
    expected = strategy.expected_widths()
    for unit, w in expected.items():
        assert min(choices[unit]) - 1e-6 <= float(w.detach()) <= max(choices[unit]) + 1e-6
    discrete = strategy.discrete_widths()
    assert all(discrete[u] in choices[u] for u in strategy.units)
    for unit, lp in strategy.choice_log_probs().items():
        assert lp.shape == (len(choices[unit]),)
        assert torch.isclose(lp.exp().sum(), torch.tensor(1.0), atol=1e-4)
    params = strategy.arch_parameters() or list(supernet.parameters())  # scp: the BN parameters
    if params:  # the budget's expected MACs are differentiable in the architecture parameters
        macs = space.expected_macs(expected)
        assert macs.requires_grad
        macs.backward()
        assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)
