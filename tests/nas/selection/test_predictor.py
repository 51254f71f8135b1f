"""nas.selection.predictor: select_with_predictor."""

from __future__ import annotations

import pytest
import torch

import search_spaces
from nas.cost import smallest_macs
from nas.engine import TrainConfig
from nas.selection import RankConfig, select_with_predictor
from nas.supernet import Supernet, extract_at
from tests.conftest import randomize_bn
from tests.nas.conftest import choices_of as _choices

pytestmark = pytest.mark.usefixtures("one_thread")


def test_topk_candidates_get_bn_statistics_for_their_own_widths() -> None:
    """At the smallest reachable budget the pool is the smallest network alone. Its labels are
    what it predicts with BN statistics recalibrated for its widths, so without fine-tuning it
    scores 100 % only if it was extracted with those statistics (not with the statistics of the
    last sub-network the supernet scored)."""
    torch.manual_seed(0)
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    model = space.build()
    randomize_bn(model, 0, (1, 8, 8))
    supernet = Supernet(model, space)
    choices = _choices(space)
    gen = torch.Generator().manual_seed(1)
    calibration = [(torch.randn(32, 1, 8, 8, generator=gen), torch.zeros(32)) for _ in range(2)]
    x = torch.randn(128, 1, 8, 8, generator=gen)
    floor = smallest_macs(space, choices)
    smallest = space.spec({u: min(c) for u, c in choices.items()})
    with torch.no_grad():
        labels = extract_at(supernet, smallest, calibration).eval()(x).argmax(1)
    assert len(set(labels.tolist())) > 1
    config = RankConfig(
        samples=10, pool=50, top_k=1, topk_epochs=0, predictor_epochs=2, predictor_hidden=8
    )
    selection = select_with_predictor(
        supernet,
        choices,
        float(floor),
        0.02,
        calibration,
        None,
        [(x, labels)],
        None,
        TrainConfig(epochs=1),
        config,
        progress=False,
    )
    assert selection.pool_size == 1 and selection.spec == smallest
    assert selection.spec.macs() <= floor
    assert selection.candidates[0]["val_acc"] == 100.0
