"""nas.selection.candidates: a candidate's one-shot score is its extracted network's score."""

from __future__ import annotations

import pytest
import torch

from nas.engine import evaluate
from nas.selection import CandidateScorer
from nas.supernet import extract_at, recalibrate_bn
from search_spaces import SearchSpace
from tests.conftest import random_widths
from tests.nas.conftest import attached

pytestmark = pytest.mark.usefixtures("one_thread")


def batches(space: SearchSpace, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(12, space.in_channels, *space.input_size, generator=g),
            torch.randint(0, 4, (12,), generator=g),
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("name", ["resnet20_b", "resnet20"])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_candidates_score_is_the_masked_supernets_and_the_extracted_networks(
    name: str, seed: int
) -> None:
    """Scoring through the extracted network equals scoring the masked supernet after the same
    BN recalibration (to 1e-5), and equals extract_at + evaluate, what the product delivers."""
    supernet, _ = attached(name, seed)
    space = supernet.space
    calibration, val = batches(space, 3, seed), batches(space, 2, seed + 10)
    scorer = CandidateScorer(supernet, calibration, val, "cpu")
    widths = random_widths(space, seed)
    got = scorer.score(widths)

    with torch.no_grad():
        supernet.set_widths(widths)
        recalibrate_bn(supernet, calibration)
        masked = evaluate(supernet, val)
        supernet.set_masks(None)
    extracted = evaluate(extract_at(supernet, space.spec(widths), calibration), val)
    for reference in (masked, extracted):
        assert got.loss == pytest.approx(reference.loss, abs=1e-5)
        assert got.accuracy == reference.accuracy
        assert got.count == reference.count == 24


def test_scores_are_cached_and_leave_the_supernet_untouched() -> None:
    supernet, _ = attached("resnet20_b", 0)
    space = supernet.space
    scorer = CandidateScorer(supernet, batches(space, 2, 0), batches(space, 1, 1), "cpu")
    before = {k: v.clone() for k, v in supernet.model.state_dict().items()}
    a, b = random_widths(space, 0), random_widths(space, 1)
    first = scorer.score(a)
    scorer.score_many([a, b, a, space.spec(b)])  # a spec scores as its widths
    assert scorer.scored == 2  # each distinct candidate scored once
    assert scorer.score(a) is first
    after = supernet.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included


def test_scoring_needs_calibration_images() -> None:
    supernet, _ = attached("resnet20_b", 0)
    with pytest.raises(ValueError, match="calibration"):
        CandidateScorer(supernet, [], batches(supernet.space, 1, 1), "cpu")
