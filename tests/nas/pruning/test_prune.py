"""The criterion pruning: scores, widths in the band, the criterion's channels, fine-tuning."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from nas.data import DataBundle
from nas.engine import loader_state, restore_loader
from nas.errors import ConfigError
from nas.extraction import kept_channels
from nas.importance import channel_order
from nas.pruning import (
    PruneConfig,
    compare_reference,
    prune_budget,
    prune_network,
    score_and_allocate,
)
from search_spaces import SearchSpace
from tests.conftest import slow_params

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = PruneConfig(finetune_epochs=0, kd_alpha=0.0)


def _next_batch(digits: DataBundle) -> torch.Tensor:
    """The first images the training loader serves next (its state restored afterwards)."""
    state = loader_state(digits.train)
    x, _ = next(iter(digits.train))
    restore_loader(digits.train, state)
    return x


# greedy allocation scores every unit's narrowing at every step: slow
@pytest.mark.parametrize("allocation", slow_params(["uniform", "global", "greedy"], {"greedy"}))
def test_allocations_land_in_the_band_and_leave_the_loader_where_it_was(
    trained: tuple[SearchSpace, nn.Module], digits: DataBundle, allocation: str
) -> None:
    space, model = trained
    assert digits.val is not None
    before = _next_batch(digits)
    config = replace(  # greedy: cuts of a quarter of each unit, fewer steps to the band
        QUICK, criterion="chip", allocation=allocation, score_images=64, greedy_step=0.25
    )
    pruning = score_and_allocate(
        model, space, digits.train, digits.val, config, prune_budget(config, space)
    )
    assert abs(pruning.spec.macs() / (0.5 * space.macs()) - 1) <= config.tolerance
    assert torch.equal(
        _next_batch(digits), before
    )  # the fine-tuning's batches do not depend on the scoring
    again = score_and_allocate(
        model, space, digits.train, digits.val, config, prune_budget(config, space)
    )
    assert again.spec.widths == pruning.spec.widths  # deterministic
    assert pruning.scoring_seconds > 0


def test_the_pruned_network_keeps_the_criterion_s_best_channels(
    trained: tuple[SearchSpace, nn.Module], digits: DataBundle
) -> None:
    space, model = trained
    assert digits.val is not None and digits.test is not None
    config = replace(QUICK, criterion="l1", allocation="uniform")
    small, pruning, metrics = prune_network(
        model, space, digits.train, digits.val, digits.test, config, baseline_acc=0.0
    )
    order = channel_order(model, space, "l1")
    unit = "layer2.1.conv1"  # the first conv of a block writes this unit
    kept = torch.sort(order[unit][: pruning.spec.widths[unit]]).values
    full_conv = model.get_submodule("layer2.1.conv1").weight
    small_conv = small.get_submodule("layer2.1.conv1").weight
    assert isinstance(full_conv, torch.Tensor) and isinstance(small_conv, torch.Tensor)
    assert torch.equal(small_conv, full_conv[kept])
    assert metrics["macs"] == pruning.spec.macs() and metrics["criterion"] == "l1"
    assert 0 <= metrics["oneshot_val_acc"] <= 100


def test_compare_fine_tunes_the_uniform_twin_from_the_same_weights(
    trained: tuple[SearchSpace, nn.Module], digits: DataBundle
) -> None:
    space, model = trained
    assert digits.val is not None and digits.test is not None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = replace(QUICK, criterion="bn", allocation="global", finetune_epochs=1, compare=True)
    _, pruning, metrics = prune_network(
        model, space, digits.train, digits.val, digits.test, config, baseline_acc=0.0
    )
    assert abs(metrics["uniform_macs"] / metrics["target_macs"] - 1) <= config.tolerance
    by_max: dict[int, set[int]] = {}
    for unit, width in metrics["uniform_widths"].items():
        by_max.setdefault(space.max_widths[unit], set()).add(width)
    assert all(len(ws) == 1 for ws in by_max.values())  # one ratio for every unit
    assert metrics["uniform_widths"] != pruning.spec.widths
    assert 0 <= metrics["uniform_acc"] <= 100
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # untouched
    # the allocation is what differs: the reference keeps the criterion's channels
    assert metrics["reference"] == "uniform widths of the same MACs, bn channels"
    reference = compare_reference(model, space, pruning, config, prune_budget(config, space))
    assert dict(reference.spec.widths) == metrics["uniform_widths"]
    assert all(torch.equal(reference.order[u], o) for u, o in pruning.order.items())


def test_with_uniform_widths_the_reference_is_the_same_widths_with_random_channels(
    trained: tuple[SearchSpace, nn.Module], digits: DataBundle
) -> None:
    """The uniform twin of a uniform allocation would be the pruned network itself; the
    reference is then the random criterion's network of the same widths and seed."""
    space, model = trained
    assert digits.val is not None and digits.test is not None
    config = replace(QUICK, criterion="l1", allocation="uniform", compare=True)
    _, pruning, metrics = prune_network(
        model, space, digits.train, digits.val, digits.test, config, baseline_acc=0.0
    )
    assert metrics["reference"] == "same widths, seeded random channels (seed 0)"
    assert metrics["uniform_widths"] == metrics["widths"] == pruning.spec.widths
    reference = compare_reference(model, space, pruning, config, prune_budget(config, space))
    mine, theirs = (
        kept_channels(pruning.spec, pruning.order),
        kept_channels(reference.spec, reference.order),
    )
    assert any(not torch.equal(mine[u], theirs[u]) for u in mine)  # other channels
    # the network fine-tuned beside it (here: no epochs) is the random criterion's at seed 0
    random = replace(config, criterion="random", compare=False)
    _, _, control = prune_network(
        model, space, digits.train, digits.val, digits.test, random, baseline_acc=0.0
    )
    assert metrics["uniform_acc"] == control["pruned_acc"]
    assert metrics["uniform_val_acc"] == control["pruned_val_acc"]
    assert metrics["pruned_acc"] != metrics["uniform_acc"]  # the old twin: the same network


def test_the_random_criterion_is_compared_with_random_channels_of_another_seed(
    trained: tuple[SearchSpace, nn.Module], digits: DataBundle
) -> None:
    space, model = trained
    config = replace(QUICK, criterion="random", allocation="uniform", compare=True, seed=3)
    assert digits.val is not None
    pruning = score_and_allocate(
        model, space, digits.train, digits.val, config, prune_budget(config, space)
    )
    reference = compare_reference(model, space, pruning, config, prune_budget(config, space))
    assert reference.description == "same widths, seeded random channels (seed 4)"
    mine, theirs = (
        kept_channels(pruning.spec, pruning.order),
        kept_channels(reference.spec, reference.order),
    )
    assert any(not torch.equal(mine[u], theirs[u]) for u in mine)


def test_spec_allocation_keeps_the_given_widths(
    trained: tuple[SearchSpace, nn.Module], digits: DataBundle
) -> None:
    space, model = trained
    assert digits.val is not None
    widths = space.uniform_widths_for_macs(0.5)
    widths["layer3.0.conv1"] -= 3
    spec = space.spec(widths)
    config = replace(QUICK, allocation="spec", target_macs=str(spec.macs_ratio()))
    pruning = score_and_allocate(
        model, space, digits.train, digits.val, config, prune_budget(config, space, spec), spec=spec
    )
    assert pruning.spec.widths == spec.widths


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"allocation": "spec"}, "--allocation spec needs --arch"),
        ({"arch": "arch.json"}, "drop --arch"),
        ({"target_macs": "0.0001"}, "below the smallest resnet20"),
        (
            {"compare": True, "from_scratch": True, "finetune_epochs": 1},
            "its reference would be the same network",
        ),
    ],
)
def test_refusals_come_before_any_work(
    trained: tuple[SearchSpace, nn.Module], change: dict[str, object], message: str
) -> None:
    space, _ = trained
    with pytest.raises(ConfigError, match=message):
        config = replace(QUICK, **change).validate()  # type: ignore[arg-type]
        prune_budget(config, space)


def test_a_spec_of_another_space_is_refused(trained: tuple[SearchSpace, nn.Module]) -> None:
    import search_spaces

    space, _ = trained
    other = search_spaces.create("resnet32", num_classes=10, in_channels=1, input_size=(8, 8))
    spec = other.spec(other.uniform_widths(0.5))
    config = replace(QUICK, allocation="spec", arch="a.json")
    with pytest.raises(ConfigError, match="width spec of resnet32, not resnet20"):
        prune_budget(config, space, spec)
