"""nas.gates.width_gumbel: logits, expected widths and MACs, masks of each mode."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from torch import Tensor

from nas.gates import WidthGumbel
from tests.conftest import small_space
from tests.nas.conftest import attached, choices_of

# a CIFAR option-A space (block units only), option B (coupled stage units), torchvision basic
# blocks (stem coupled into layer1) and bottlenecks (separate stem unit, two convs per block)
BUDGET_SPACES = ["resnet20", "resnet20_b", "resnet18", "resnet50"]


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
