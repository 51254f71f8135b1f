"""nas.pruning.evaluation: greedy's accuracy of candidate widths is the accuracy of the network
extraction would deliver (the criterion's channels, BN recalibrated for those widths)."""

from __future__ import annotations

import pytest
import torch

import search_spaces
from nas.engine import evaluate
from nas.extraction import extract
from nas.importance import channel_order
from nas.pruning import masked_accuracy
from nas.supernet import recalibrate_bn
from tests.nas.conftest import in_shape, prepared


def test_masked_accuracy_is_the_extracted_networks_accuracy() -> None:
    space = search_spaces.create("resnet20_b", num_classes=4, in_channels=3, input_size=(8, 8))
    model = prepared(space)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, *in_shape(space), generator=g)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)  # labels the full network gets right
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 96, 16)]
    train, val = batches[:4], batches[4:]
    order = channel_order(model, space, "l1")
    accuracy = masked_accuracy(model, space, order, train, val)
    assert accuracy(space.full_widths()) == pytest.approx(
        _reference(model, space, space.full_widths(), order, train, val)
    )
    widths = space.uniform_widths(0.5)
    assert accuracy(widths) == pytest.approx(_reference(model, space, widths, order, train, val))
    assert accuracy(widths) < 100.0  # cutting half the channels costs something


def _reference(
    model: torch.nn.Module,
    space: search_spaces.SearchSpace,
    widths: dict[str, int],
    order: dict[str, torch.Tensor],
    train: list[tuple[torch.Tensor, torch.Tensor]],
    val: list[tuple[torch.Tensor, torch.Tensor]],
) -> float:
    small = extract(model, space.spec(widths), order)
    recalibrate_bn(small, train)
    return evaluate(small, val).accuracy
