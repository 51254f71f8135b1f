"""nas.selection.methods: every registered selection method returns widths under the budget."""

from __future__ import annotations

import pytest
import torch

from nas.engine import Distillation, TrainConfig
from nas.selection import SELECTIONS, RankConfig, SelectionRequest
from nas.supernet import CALIBRATION_BATCHES
from tests.nas.conftest import attached, choices_of

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", SELECTIONS.names())
def test_every_selection_method_keeps_or_picks_widths_under_the_budget(name: str) -> None:
    supernet, _ = attached("resnet20_b")
    space = supernet.space
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(8, space.in_channels, *space.input_size, generator=g), torch.arange(8) % 4)
        for _ in range(CALIBRATION_BATCHES)
    ]
    target, tolerance = 0.5 * space.macs(), 0.05
    request = SelectionRequest(
        supernet=supernet,
        choices=choices_of(space),
        target=target,
        tolerance=tolerance,
        calibration=batches,
        train_loader=batches,
        val_loader=batches,
        teacher=None,
        finetune=TrainConfig(epochs=1, lr=0.01),
        distill=Distillation(),
        rank=RankConfig(samples=10, pool=20, top_k=2, topk_epochs=0, predictor_epochs=2),
        progress=False,
    )
    selection = SELECTIONS.get(name)(request)
    if selection is None:  # the method keeps the search's own (projected argmax) widths
        return
    macs = selection.spec.macs()
    assert target * (1 - tolerance) <= macs <= target
    assert len(selection.candidates) == 2
