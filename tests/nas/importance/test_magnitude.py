"""nas.importance.magnitude: the weight-only criteria."""

from __future__ import annotations

import torch

import search_spaces
from nas.extraction import kept_channels
from nas.importance import channel_order


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
