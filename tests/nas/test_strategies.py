"""Gate strategies: the registry, what the architecture parameters are, and the masks of each
mode."""

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
)
from nas.supernet import Supernet, nested_masks, width_choices
from nas.width_search import DEFAULT_WIDTH_RATIOS, SearchConfig
from nas.width_search import SearchRun as _SearchRun
from search_spaces import SearchSpace
from tests.conftest import randomize_bn, small_space


def choices_of(space: SearchSpace) -> dict[str, list[int]]:
    return {u.name: width_choices(u.max_width, DEFAULT_WIDTH_RATIOS) for u in space.units}


def attached(name: str = "resnet20_b", seed: int = 0) -> tuple[Supernet, WidthGumbel]:
    space = small_space(name, num_classes=4)
    torch.manual_seed(seed)
    model = space.build()
    randomize_bn(model, seed, (space.in_channels, *space.input_size))
    supernet = Supernet(model, space)
    strategy = WidthGumbel(space, choices_of(space))
    strategy.attach(supernet)
    return supernet, strategy


def distinct_logits(strategy: WidthGumbel, seed: int = 0) -> None:
    """Logits whose entries differ by at least 0.1 (a well-defined argmax per unit)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for logits in strategy.logits:
            logits.copy_(torch.randperm(len(logits), generator=g).float() * 0.1)


def is_nested_01(mask: Tensor, choices: Sequence[int]) -> int:
    """The width of a 0/1 mask that keeps the first ``w`` channels (``w`` a choice), else -1."""
    if not torch.all((mask == 0) | (mask == 1)):
        return -1
    w = int(mask.sum())
    if w not in choices or not torch.equal(mask, (torch.arange(mask.numel()) < w).float()):
        return -1
    return w


# -- registry ------------------------------------------------------------------------------------
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


# -- architecture parameters -----------------------------------------------------------------------
def test_arch_parameters_are_only_the_logits() -> None:
    supernet, strategy = attached()
    params = strategy.arch_parameters()
    assert [id(p) for p in params] == [id(p) for p in strategy.logits]
    assert len(params) == len(supernet.space.units)
    weight_ids = {id(p) for p in supernet.weights()}
    assert not weight_ids & {id(p) for p in strategy.parameters()}
    assert sum(p.numel() for p in params) == sum(len(c) for c in strategy.choices.values())
    # the state_dict (checkpoints) holds no network tensor
    keys = list(strategy.state_dict())
    assert keys and all(k.startswith(("logits.", "_nested_", "_widths_")) for k in keys)
    assert strategy.supernet is supernet
    assert all(m is not supernet for m in strategy.modules())


def test_unattached_strategy_has_no_supernet() -> None:
    space = small_space("resnet20")
    strategy = WidthGumbel(space, choices_of(space))
    with pytest.raises(RuntimeError, match="not attached"):
        strategy.gate("discrete", 1.0)


def make_run(supernet: Supernet, strategy: WidthGumbel) -> _SearchRun:
    space = supernet.space
    g = torch.Generator().manual_seed(0)
    shape = (8, space.in_channels, *space.input_size)
    batches = [(torch.randn(*shape, generator=g), torch.randint(0, 4, (8,), generator=g))] * 2
    config = SearchConfig(target_macs="0.3", budget_weight=2.0, warmup_epochs=0, search_epochs=1)
    target = config.target_for(space)
    return _SearchRun(supernet, strategy, config, target, batches, batches, torch.device("cpu"))


def test_architecture_step_changes_only_the_logits() -> None:
    supernet, strategy = attached()
    run = make_run(supernet, strategy)
    supernet.train()
    params_before = {k: v.detach().clone() for k, v in supernet.model.named_parameters()}
    logits_before = [lg.detach().clone() for lg in strategy.logits]
    x, y = run.train_loader[0]  # type: ignore[index]
    for _ in range(3):
        run._arch_step(x, y, tau=1.0)
    for k, v in supernet.model.named_parameters():
        assert torch.equal(v, params_before[k]), k
    changed = [not torch.equal(a, b) for a, b in zip(strategy.logits, logits_before, strict=True)]
    assert all(changed)

    # the weight step, in turn, leaves the logits alone and trains the weights
    logits_before = [lg.detach().clone() for lg in strategy.logits]
    run._weight_step(x, y, "sample", tau=1.0)
    assert all(torch.equal(a, b) for a, b in zip(strategy.logits, logits_before, strict=True))
    assert any(not torch.equal(v, params_before[k]) for k, v in supernet.model.named_parameters())


def test_architecture_step_against_the_budget_lowers_expected_macs() -> None:
    supernet, strategy = attached(seed=1)
    run = make_run(supernet, strategy)
    run.config.budget_weight = 50.0  # the budget dominates the cross-entropy
    space = supernet.space
    with torch.no_grad():  # argmax at full width: the discrete network is over the 0.3 target
        for lg in strategy.logits:
            lg.zero_()
            lg[-1] = 3.0
    assert space.macs(strategy.discrete_widths()) == space.macs()
    x, y = run.train_loader[0]  # type: ignore[index]
    before = space.expected_macs(strategy.expected_widths()).item()
    for _ in range(5):
        run._arch_step(x, y, tau=1.0)
    after = space.expected_macs(strategy.expected_widths()).item()
    assert after < before  # over the 0.3 target: pushed down


# -- masks of each mode ----------------------------------------------------------------------------
def test_discrete_masks_are_the_argmax_nested_masks() -> None:
    supernet, strategy = attached()
    distinct_logits(strategy)
    widths = strategy.discrete_widths()
    masks = strategy.masks("discrete", 1.0)
    for i, unit in enumerate(strategy.units):
        k = int(strategy.logits[i].argmax())
        assert widths[unit] == strategy.choices[unit][k]
        assert is_nested_01(masks[unit], strategy.choices[unit]) == widths[unit], unit
    # gate() puts them on the unit's BN layers
    strategy.gate("discrete", 1.0)
    for unit, bns in supernet.bns.items():
        assert bns and all(bn.mask is not None for bn in bns)
        assert all(torch.equal(bn.mask, masks[unit]) for bn in bns if bn.mask is not None)
    with pytest.raises(ValueError, match="mode"):
        strategy.gate("sideways", 1.0)


def test_hard_samples_are_nested_01_masks_with_gradients() -> None:
    _, strategy = attached()
    torch.manual_seed(0)
    seen: dict[str, set[int]] = {u: set() for u in strategy.units}
    for _ in range(20):
        masks = strategy.masks("hard", 1.0)
        for unit, m in masks.items():
            w = is_nested_01(m, strategy.choices[unit])
            assert w > 0, (unit, m)
            seen[unit].add(w)
    assert all(len(s) > 1 for s in seen.values())  # they are samples, not the argmax
    # straight-through: the discrete forward pass still has gradients for the logits
    total = sum(m.sum() for m in strategy.masks("hard", 1.0).values())
    assert isinstance(total, Tensor)
    total.backward()
    assert all(lg.grad is not None and lg.grad.abs().sum() > 0 for lg in strategy.logits)


def test_relaxed_masks_converge_to_the_discrete_masks() -> None:
    _, strategy = attached()
    distinct_logits(strategy, seed=3)
    discrete = strategy.masks("discrete", 1.0)
    gaps = []
    for tau in (10.0, 1.0, 0.1, 1e-3):
        relaxed = strategy.masks("relaxed", tau)
        gaps.append(max((relaxed[u] - discrete[u]).abs().max().item() for u in strategy.units))
    assert gaps[-1] < 1e-3
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0.1


@pytest.mark.parametrize("mode", ["sample", "relaxed"])
def test_soft_masks_are_non_increasing_in_0_1(mode: str) -> None:
    _, strategy = attached()
    distinct_logits(strategy, seed=4)
    torch.manual_seed(1)
    for unit, m in strategy.masks(mode, 2.0).items():
        assert torch.all(m >= 0) and torch.all(m <= 1 + 1e-6), unit
        assert torch.all(m[1:] <= m[:-1] + 1e-6), unit
        assert m[0].item() == pytest.approx(1.0, abs=1e-5)  # every choice keeps channel 0
        assert m.requires_grad


def test_expected_widths_follow_the_distribution() -> None:
    _, strategy = attached()
    with torch.no_grad():
        for lg in strategy.logits:
            lg.zero_()
    for unit, w in strategy.expected_widths().items():
        choices = torch.tensor(strategy.choices[unit], dtype=torch.float)
        assert w.item() == pytest.approx(choices.mean().item(), rel=1e-5)
    log_probs = strategy.choice_log_probs()
    assert all(torch.allclose(lp.exp().sum(), torch.tensor(1.0)) for lp in log_probs.values())
    assert all(not lp.requires_grad for lp in log_probs.values())


def test_strategy_state_round_trip() -> None:
    _, strategy = attached()
    distinct_logits(strategy, seed=5)
    _, other = attached()
    other.load_state_dict(strategy.state_dict())
    assert other.discrete_widths() == strategy.discrete_widths()
    a, b = strategy.masks("relaxed", 0.5), other.masks("relaxed", 0.5)
    assert all(torch.equal(a[u], b[u]) for u in a)
