"""nas.importance.magnitude: the weight-only criteria."""

from __future__ import annotations

import torch

import search_spaces
from nas.extraction import kept_channels
from nas.importance import channel_order, channel_scores


def test_l1_order_keeps_the_strongest_filters() -> None:
    space = search_spaces.create("resnet20")
    full = space.build()
    conv = full.get_submodule("layer1.0.conv1")
    assert isinstance(conv, torch.nn.Conv2d)
    with torch.no_grad():
        conv.weight.mul_(0.01)
        conv.weight[[3, 7, 12]] *= 1000.0
    spec = space.spec({**space.full_widths(), "layer1.0.conv1": 3})
    keep = kept_channels(spec, channel_order(full, space, "l1"))
    assert keep["layer1.0.conv1"].tolist() == [3, 7, 12]
    assert kept_channels(spec)["layer1.0.conv1"].tolist() == [0, 1, 2]


def _conv(model: torch.nn.Module, name: str) -> torch.nn.Conv2d:
    conv = model.get_submodule(name)
    assert isinstance(conv, torch.nn.Conv2d)
    return conv


UNIT = "layer2.1.conv1"  # an option-A unit written by one conv


def test_l1_and_l2_rank_a_zeroed_filter_last() -> None:
    space = search_spaces.create("resnet20")
    full = space.build()
    with torch.no_grad():
        _conv(full, UNIT).weight[9].zero_()
    for criterion in ("l1", "l2"):
        scores = channel_scores(full, space, criterion)[UNIT]
        assert int(scores.argmin()) == 9 and float(scores[9]) == 0.0
        assert channel_order(full, space, criterion)[UNIT][-1].item() == 9


def test_fpgm_ranks_a_duplicated_filter_below_the_distinct_ones() -> None:
    space = search_spaces.create("resnet20")
    full = space.build()
    with torch.no_grad():
        w = _conv(full, UNIT).weight
        w.copy_(torch.nn.functional.normalize(torch.randn_like(w).flatten(1), dim=1).view_as(w))
        w[5] = w[11]  # a duplicate: both copies sit nearer the others' median
    scores = channel_scores(full, space, "fpgm")[UNIT]
    lowest = set(torch.argsort(scores)[:2].tolist())
    assert lowest == {5, 11}


def test_bn_follows_the_absolute_scale() -> None:
    space = search_spaces.create("resnet20")
    full = space.build()
    bn = full.get_submodule("layer2.1.bn1")
    assert isinstance(bn, torch.nn.BatchNorm2d)
    gamma = torch.linspace(-2.0, 1.0, bn.num_features)
    with torch.no_grad():
        bn.weight.copy_(gamma)
    order = channel_order(full, space, "bn")[UNIT]
    assert order.tolist() == torch.argsort(gamma.abs(), descending=True, stable=True).tolist()


def test_random_is_seeded_and_uniform_keeps_the_first_channels() -> None:
    space = search_spaces.create("resnet20")
    full = space.build()
    a = channel_scores(full, space, "random", seed=3)[UNIT]
    assert torch.equal(a, channel_scores(full, space, "random", seed=3)[UNIT])
    assert not torch.equal(a, channel_scores(full, space, "random", seed=4)[UNIT])
    assert channel_order(full, space, "uniform")[UNIT].tolist() == list(range(32))
