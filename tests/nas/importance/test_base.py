"""nas.importance.base: the criteria registry and the rule for coupled units."""

from __future__ import annotations

import pytest
import torch

import search_spaces
from nas.errors import ConfigError
from nas.importance import CRITERIA, channel_order, channel_scores
from tests.conftest import slow_params, small_space
from tests.nas.conftest import in_shape, prepared


def test_bn_order_ranks_coupled_units_by_all_their_bns() -> None:
    space = search_spaces.create("resnet20_b")
    full = space.build()
    with torch.no_grad():
        for name in ("bn1", "layer1.0.bn2", "layer1.1.bn2", "layer1.2.bn2"):
            bn = full.get_submodule(name)
            assert isinstance(bn, torch.nn.BatchNorm2d)
            bn.weight.fill_(0.1)
            bn.weight[5] = 2.0
    assert channel_order(full, space, "bn")["layer1"][0].item() == 5


def test_unknown_order_criterion() -> None:
    space = search_spaces.create("resnet20")
    with pytest.raises(ConfigError, match="unknown channel-importance criterion 'magic'"):
        channel_order(space.build(), space, "magic")


SPACES_BY_FAMILY = ["resnet20", "resnet20_b", "resnet18", "resnet50"]


@pytest.mark.parametrize("criterion", CRITERIA.names())
@pytest.mark.parametrize(  # every criterion on resnet20 in the quick suite, the other families slow
    "space_name", slow_params(SPACES_BY_FAMILY, set(SPACES_BY_FAMILY) - {"resnet20"})
)
def test_every_criterion_scores_every_unit_of_every_family(criterion: str, space_name: str) -> None:
    space = small_space(space_name)
    if space_name in ("resnet18", "resnet50"):  # 8x8 inputs: CHIP's exact scores stay quick
        space = search_spaces.create(space_name, num_classes=7, input_size=(8, 8))
    model = prepared(space)
    data = [(torch.randn(4, *in_shape(space)), torch.randint(0, 7, (4,))) for _ in range(2)]
    scores = channel_scores(model, space, criterion, data)
    assert set(scores) == {u.name for u in space.units}
    for unit in space.units:
        s = scores[unit.name]
        assert s.shape == (unit.max_width,) and bool(torch.isfinite(s).all())
    order = channel_order(model, space, criterion, data)
    for unit in space.units:  # an order is a permutation of the unit's channels
        assert sorted(order[unit.name].tolist()) == list(range(unit.max_width))
        ranked = scores[unit.name][order[unit.name]]
        assert bool((ranked[:-1] >= ranked[1:]).all())  # most important first


@pytest.mark.parametrize("criterion", [c for c in CRITERIA.names() if CRITERIA.get(c).needs_data])
def test_a_data_driven_criterion_without_data_is_one_line(criterion: str) -> None:
    space = search_spaces.create("resnet20")
    with pytest.raises(ConfigError, match=f"criterion '{criterion}' looks at activations"):
        channel_scores(space.build(), space, criterion)
