"""nas.extraction.weights: weights that do not fit the network are refused."""

from __future__ import annotations

import pytest

import search_spaces
from nas.errors import WeightsError
from nas.extraction import extract


def test_mismatched_weights_are_refused() -> None:
    space = search_spaces.create("resnet20")
    other = search_spaces.create("resnet20", num_classes=100).build()
    with pytest.raises(WeightsError, match=r"fc\.weight has shape"):
        extract(other.state_dict(), space.spec(space.uniform_widths(0.5)))
    with pytest.raises(WeightsError, match=r"unexpected \['layer1\.3"):
        extract(search_spaces.create("resnet32").build(), space.spec())
