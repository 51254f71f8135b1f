"""nas.selection.methods: every registered chooser picks widths in the budget band, and the
uniform width of the budget is always scored beside them."""

from __future__ import annotations

import pytest
import torch

from nas.cost import MacsCost, ResolvedBudget
from nas.engine import Distillation, TrainConfig
from nas.selection import SELECTIONS, RankConfig, SelectionRequest, choose
from nas.width_search import DEFAULT_WIDTH_RATIOS
from tests.conftest import slow_params
from tests.nas.conftest import COARSE_RATIOS, attached, choices_of

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", slow_params(SELECTIONS.names(), {"greedy"}))  # greedy: slow
def test_every_chooser_picks_widths_in_the_band_and_scores_uniform_width_beside(
    name: str,
) -> None:
    supernet, strategy = attached("resnet20_b")
    space = supernet.space
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(8, space.in_channels, *space.input_size, generator=g), torch.arange(8) % 4)
        for _ in range(3)
    ]
    target, tolerance = 0.5 * space.macs(), 0.05
    initial = space.spec(space.uniform_widths_for_macs(0.49))
    request = SelectionRequest(
        supernet=supernet,
        budget=ResolvedBudget(
            target,
            tolerance,
            MacsCost(space),
            choices_of(space, COARSE_RATIOS if name == "greedy" else DEFAULT_WIDTH_RATIOS),
        ),
        calibration=batches,
        train_loader=batches,
        val_loader=batches,
        teacher=None,
        finetune=TrainConfig(epochs=1, lr=0.01),
        distill=Distillation(),
        rank=RankConfig(samples=10, pool=20, top_k=2, topk_epochs=0, predictor_epochs=2),
        initial=initial,
        log_probs=strategy.choice_log_probs(),
        population=4,
        generations=1,
        progress=False,
    )
    choice = choose(name, request)
    macs = choice.spec.macs()
    assert target * (1 - tolerance) <= macs <= target * (1 + tolerance)
    if name == "argmax":
        assert choice.spec == initial  # the search's own projected argmax
    if name == "predictor":
        assert len(choice.details["candidates"]) == 2 and choice.predictor is not None
    scorer = request.get_scorer()
    assert scorer.key(choice.uniform_spec.widths) in scorer.cache  # uniform always scored
    assert choice.uniform == scorer.score(choice.uniform_spec)
    assert choice.delivered == scorer.score(choice.spec)
    assert choice.scored == scorer.scored >= 2
    assert choice.beats_uniform == (choice.delivered.loss < choice.uniform.loss)
    metrics = choice.metrics()
    assert metrics["uniform_oneshot_val_loss"] == choice.uniform.loss
    assert metrics["candidates_scored"] == choice.scored
