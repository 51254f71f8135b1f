"""nas.selection.proxies: synflow."""

from __future__ import annotations

import pytest
import torch

import search_spaces
from nas.selection import synflow

pytestmark = pytest.mark.usefixtures("one_thread")


def test_synflow_grows_with_width_and_leaves_the_global_rng_alone() -> None:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    small = synflow(space, space.uniform_widths(0.25))
    large = synflow(space, space.full_widths())
    assert torch.equal(torch.get_rng_state(), state)
    assert 0 < small < large
    assert synflow(space, space.uniform_widths(0.25)) == small  # seeded
