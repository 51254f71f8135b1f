"""nas.extraction.weights: weights that do not fit the network are refused."""

from __future__ import annotations

from typing import Any

import pytest

import search_spaces
from nas.errors import WeightsError
from nas.extraction import check_initial_weights, extract, load_fitting


def test_mismatched_weights_are_refused() -> None:
    space = search_spaces.create("resnet20")
    other = search_spaces.create("resnet20", num_classes=100).build()
    with pytest.raises(WeightsError, match=r"fc\.weight has shape"):
        extract(other.state_dict(), space.spec(space.uniform_widths(0.5)))
    with pytest.raises(WeightsError, match=r"unexpected \['layer1\.3"):
        extract(search_spaces.create("resnet32").build(), space.spec())


@pytest.mark.parametrize(
    ("source", "fits"),
    [
        ({}, True),  # the same task
        ({"num_classes": 100}, True),  # another task's classifier starts afresh
        ({"in_channels": 3}, True),  # so does the input layer for other image channels
        ({"num_classes": 100, "in_channels": 3}, True),
    ],
)
def test_weights_of_another_task_may_seed_a_search(source: dict[str, Any], fits: bool) -> None:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1)
    state = search_spaces.create("resnet20", **source).build().state_dict()
    check_initial_weights(space, state)
    model = space.build()
    kept = load_fitting(model, state)
    assert set(kept) <= {"conv1.weight", "fc.weight", "fc.bias"}  # only what the data ask


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("pruned", r"layer1\.0\.conv1\.weight has shape .* a pruned network"),
        ("missing", r"missing layer2\.0\.bn1\.weight"),
        ("other space", r"not a resnet20 network \(unexpected \['layer1\.3"),
        ("stem width", r"conv1\.weight has shape \(8, 1, 3, 3\)"),
    ],
)
def test_weights_that_do_not_fit_beyond_the_data_layers_are_refused(
    tamper: str, message: str
) -> None:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1)
    state = space.build().state_dict()
    if tamper == "pruned":
        state = extract(state, space.spec(space.uniform_widths(0.5))).state_dict()
    elif tamper == "missing":
        del state["layer2.0.bn1.weight"]
    elif tamper == "other space":
        state = search_spaces.create("resnet32", in_channels=1).build().state_dict()
    else:  # the input layer with fewer filters: not a difference the data explain
        state["conv1.weight"] = state["conv1.weight"][:8]
    with pytest.raises(WeightsError, match=message):
        check_initial_weights(space, state)
