"""nas.importance.function: the functionality-oriented criterion (Qin et al.)."""

from __future__ import annotations

import torch

import search_spaces
from nas.importance import channel_scores
from nas.importance.function import class_responses, functional_scores
from tests.nas.conftest import prepared


def test_a_weaker_copy_of_a_function_is_scored_lowest_and_its_original_keeps_its_strength() -> None:
    g = torch.Generator().manual_seed(0)
    responses = torch.rand(8, 10, generator=g, dtype=torch.float64) + 0.5
    responses[4] = 0.5 * responses[7] + 0.01  # the same classes excite it, more weakly
    scores = functional_scores(responses).double()
    strength = responses.norm(dim=1)
    assert int(scores.argmin()) == 4 and float(scores[4]) < 0.01 * float(strength[4])
    # channel 7 represents the function: it keeps its strength, as the distinct channels do
    keep = [c for c in range(8) if c != 4]
    assert torch.allclose(scores[keep], strength[keep], rtol=1e-6)


def test_a_filter_that_never_fires_scores_zero_and_a_lone_filter_keeps_its_strength() -> None:
    responses = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5]])
    assert functional_scores(responses).tolist() == [0.0, torch.tensor([1.0, 2.0, 0.5]).norm()]
    assert functional_scores(responses[1:]).item() == responses[1].norm().item()


def test_class_responses_are_the_per_class_means_of_the_pooled_maps() -> None:
    features = torch.arange(24.0).view(4, 2, 3)  # 4 images, 2 channels, 3 positions
    sums, counts = class_responses(features, torch.tensor([0, 1, 1, 0]), 3)
    pooled = features.mean(2)  # (4, 2)
    assert counts.tolist() == [2.0, 2.0, 0.0]
    assert torch.allclose(
        (sums[:, :2] / counts[:2]).float(),
        torch.stack([(pooled[0] + pooled[3]) / 2, (pooled[1] + pooled[2]) / 2], 1),
    )


@torch.no_grad()
def test_a_filter_duplicated_in_a_network_is_found_redundant() -> None:
    space = search_spaces.create("resnet20", num_classes=10)
    model = prepared(space)
    conv, bn = model.get_submodule("layer2.1.conv1"), model.get_submodule("layer2.1.bn1")
    assert isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d)
    for p in (conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var):
        assert p is not None
        p[9] = p[3]  # filter 9 computes what filter 3 computes
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(32, 3, 32, 32, generator=g), torch.arange(32) % 10) for _ in range(4)]
    unit = next(la.out_unit for la in space.layers if la.name == "layer2.1.conv1")
    assert unit is not None
    scores = channel_scores(model, space, "function", data, images=128)[unit]
    assert int(scores.argmin()) in (3, 9)
    assert float(scores.min()) < 1e-3 * float(scores.median())
