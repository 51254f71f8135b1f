"""Per-channel gate strategies (channel-gumbel, scp) and what every strategy owes the search."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from nas.data import DataBundle, TensorLoader
from nas.errors import ConfigError
from nas.gates import STRATEGIES, ChannelGumbel, SoftChannelPruning, strategy_options
from nas.gates.channel_gates import bn_off_probability
from nas.supernet import Supernet, recalibrate_bn
from nas.width_search import SearchRun, extract_searched, search_widths
from search_spaces import SearchSpace
from tests.conftest import small_space
from tests.nas.conftest import choices_of, interrupt_on_call, prepared
from tests.nas.width_search.conftest import tiny

slow = pytest.mark.slow
pytestmark = pytest.mark.usefixtures("one_thread")

# short runs need a quicker architecture optimiser than the default
QUICK = {"arch_lr": 0.3, "search_epochs": 4}


# -- every strategy: budget, extraction, resume ---------------------------------------------------
@slow
@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_meets_the_budget_extracts_its_gates_and_resumes(
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    digits: DataBundle,
    val: TensorLoader,
    trained: tuple[SearchSpace, nn.Module],
) -> None:
    space, model = trained
    per_input = bool(STRATEGIES.get(name).per_input)  # type: ignore[attr-defined]
    config = tiny(strategy=name, target_macs="0.4", static=per_input, **QUICK)
    straight = search_widths(model, space, digits.train, val, config=config, progress=False)
    state = {k: v.clone() for k, v in straight.supernet.state_dict().items()}
    # the MAC budget: within +-2 % of the target
    assert abs(straight.spec.macs_ratio() / 0.4 - 1) <= config.tolerance
    # the extracted network computes what the masked supernet computes at the final gates
    supernet = straight.supernet.eval()
    x, _ = next(iter(val))
    with torch.no_grad():
        straight.strategy.gate("discrete", 1.0)
        recalibrate_bn(supernet, straight.calibration)
        reference = supernet.eval()(x)
        supernet.set_masks(None)
    gates = straight.strategy.discrete_widths()
    small = extract_searched(replace(straight, spec=space.spec(gates))).eval()
    with torch.no_grad():
        assert (small(x) - reference).abs().max().item() <= 1e-5
    # an interrupted run resumes to the same result
    out = tmp_path / "run"
    monkeypatch.setattr(SearchRun, "epoch", interrupt_on_call(3, SearchRun.epoch))
    with pytest.raises(KeyboardInterrupt):
        search_widths(model, space, digits.train, val, config=config, out_dir=out, progress=False)
    monkeypatch.undo()
    resumed = search_widths(
        model, space, digits.train, val, config=config, out_dir=out, resume=True, progress=False
    )
    assert resumed.spec.widths == straight.spec.widths
    resumed_state = resumed.supernet.state_dict()
    assert all(torch.equal(resumed_state[k], v) for k, v in state.items())
    assert all(
        torch.equal(p, q)
        for p, q in zip(
            resumed.strategy.state_dict().values(),
            straight.strategy.state_dict().values(),
            strict=True,
        )
    )


# -- channel-gumbel --------------------------------------------------------------------------------
def _gumbel(group_size: int = 1) -> tuple[Supernet, ChannelGumbel]:
    space = small_space("resnet20", num_classes=4)
    supernet = Supernet(prepared(space), space)
    strategy = ChannelGumbel(space, choices_of(space), group_size=group_size)
    strategy.attach(supernet)
    return supernet, strategy


@pytest.mark.parametrize("target", [0.3, 0.99])
def test_the_batch_activation_loss_pushes_the_rate_toward_the_target(target: float) -> None:
    _, strategy = _gumbel()
    torch.manual_seed(0)
    strategy.masks("hard", 1.0)  # a hard sample: the rate the loss sees
    space = strategy.space
    rate = float(space.expected_macs(strategy.used_widths()).detach() / space.macs())
    loss = strategy.budget_loss(target)
    assert loss is not None
    assert float(loss.detach()) == pytest.approx((target - rate) ** 2, rel=1e-5)
    loss.backward()
    grads = torch.cat([lg.grad for lg in strategy.logits if lg.grad is not None])
    # gradient descent moves the open probabilities down when the rate is over the target
    if rate > target:
        assert float(grads.sum()) > 0
    else:
        assert float(grads.sum()) < 0


def test_groups_of_channels_share_one_gate_and_choices_follow_the_groups() -> None:
    _, strategy = _gumbel(group_size=8)
    masks = strategy.masks("hard", 1.0)
    for unit, m in masks.items():
        groups = m.view(-1, 8)
        assert bool((groups == groups[:, :1]).all()), unit  # one value per group
        assert strategy.choices[unit] == list(range(8, strategy.space.max_widths[unit] + 1, 8))
    with pytest.raises(ConfigError, match="does not divide"):
        ChannelGumbel(strategy.space, choices_of(strategy.space), group_size=5)


def test_extraction_keeps_the_open_channels_after_the_permutation() -> None:
    supernet, strategy = _gumbel()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for lg in strategy.logits:
            lg.copy_(torch.randn(lg.shape, generator=g) * 3)
    before = {u: m.clone() for u, m in strategy.masks("discrete", 1.0).items()}
    x = torch.randn(2, supernet.space.in_channels, *supernet.space.input_size, generator=g)
    supernet.eval()
    with torch.no_grad():
        strategy.gate("discrete", 1.0)
        reference = supernet(x)
        from nas.extraction import permute_channels

        order = strategy.channel_order()
        permute_channels(supernet.model, supernet.space, order)
        strategy.permute(order)
        after = strategy.masks("discrete", 1.0)
        widths = strategy.discrete_widths()
        for u, m in after.items():  # the open channels are now the first ones
            assert torch.equal(m, (torch.arange(m.numel()) < widths[u]).float()), u
            assert int(m.sum()) == int(before[u].sum())
        supernet.set_widths(widths)
        assert torch.allclose(supernet(x), reference, atol=1e-5)


def test_choice_log_probs_are_the_most_probable_configurations() -> None:
    _, strategy = _gumbel()
    with torch.no_grad():
        strategy.logits[0].copy_(torch.linspace(-3, 3, strategy.logits[0].numel()))
    unit = strategy.units[0]
    lp = strategy.choice_log_probs()[unit].double()
    p = torch.sort(torch.sigmoid(strategy.logits[0].detach().double()), descending=True).values

    def config(k: int) -> torch.Tensor:
        return p[:k].log().sum() + (1 - p[k:]).log().sum()

    scores = torch.stack([config(k) for k in range(1, p.numel() + 1)])
    assert torch.allclose(lp, torch.log_softmax(scores, 0), atol=1e-4)
    assert strategy.discrete_widths()[unit] == int((p > 0.5).sum())


# -- scp -----------------------------------------------------------------------------------------
def test_scp_off_probability_matches_monte_carlo_through_relu() -> None:
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 0.5, 2.0, -1.0, 0.3, 1.5]))
        bn.bias.copy_(torch.tensor([0.0, 0.4, -1.0, 0.5, -0.1, 2.0]))
    g = torch.Generator().manual_seed(0)
    samples = bn.bias.detach() + bn.weight.detach().abs() * torch.randn(200_000, 6, generator=g)
    monte_carlo = (torch.relu(samples) == 0).float().mean(0)
    assert torch.allclose(bn_off_probability(bn).detach(), monte_carlo, atol=5e-3)


def test_scp_budget_gradient_reaches_the_bn_parameters() -> None:
    space = small_space("resnet20", num_classes=4)
    supernet = Supernet(prepared(space), space)
    strategy = SoftChannelPruning(space, choices_of(space))
    strategy.attach(supernet)
    assert strategy.arch_parameters() == []  # SCP's gates are the BN parameters themselves
    macs = space.expected_macs(strategy.expected_widths())
    macs.backward()
    bn = supernet.bns[strategy.units[0]][0]
    assert bn.bias.grad is not None and float(bn.bias.grad.abs().sum()) > 0


# -- options -------------------------------------------------------------------------------------
def test_strategy_options_are_typed_from_the_constructor() -> None:
    assert strategy_options("channel-gumbel", ["group_size=8", "init_open=0.9"]) == {
        "group_size": 8,
        "init_open": 0.9,
    }
    for items, message in (
        (["group_size=eight"], "is not of type int"),
        (["groups=8"], "has no option 'groups'"),
        (["group_size"], "takes key=value"),
        (["init_open=nan"], "is not of type float"),
    ):
        with pytest.raises(ConfigError, match=message):
            strategy_options("channel-gumbel", items)
