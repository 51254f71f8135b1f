"""nas.engine.features: kernel feature distillation between networks of different widths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import search_spaces
from nas.engine import Distillation, TrainConfig, train_model
from nas.engine.features import kernel_loss, position_kernel, ramp, stage_ends
from nas.errors import ConfigError
from nas.extraction import extract
from tests.nas.engine.conftest import FAST, loaders, small_cnn, states_equal


def test_the_kernel_loss_is_zero_for_identical_features_and_blind_to_channel_order() -> None:
    g = torch.Generator().manual_seed(0)
    teacher = [torch.randn(4, 16, 12, 12, generator=g), torch.randn(4, 32, 6, 6, generator=g)]
    assert float(kernel_loss([t.clone() for t in teacher], teacher)) == 0.0
    # a student with the teacher's channels shuffled and rescaled computes the same kernels
    permuted = [3.0 * t[:, torch.randperm(t.shape[1], generator=g)] for t in teacher]
    assert float(kernel_loss(permuted, teacher)) < 1e-10
    # ... and other features with fewer channels do not
    other = [torch.randn(4, 5, 12, 12, generator=g), torch.randn(4, 9, 6, 6, generator=g)]
    assert float(kernel_loss(other, teacher)) > 1e-3


def test_the_position_kernel_pools_large_maps_and_has_a_unit_diagonal() -> None:
    k = position_kernel(torch.randn(2, 3, 32, 32))
    assert k.shape == (2, 64, 64)  # pooled to 8 x 8 positions
    assert torch.allclose(k.diagonal(dim1=1, dim2=2), torch.ones(2, 64))


def test_the_feature_weight_ramps_up_over_the_first_half_of_the_steps() -> None:
    assert ramp(0, 100, 50.0) == 0.0
    assert ramp(25, 100, 50.0) == 25.0
    assert ramp(50, 100, 50.0) == ramp(99, 100, 50.0) == 50.0


@pytest.mark.parametrize(
    ("name", "ends"),
    [
        ("resnet20", ["layer1", "layer2", "layer3"]),
        ("mobilenet_v2_cifar", ["features.3", "features.6", "features.13", "features"]),
    ],
)
def test_the_stage_ends_are_the_outputs_of_whole_stages_at_any_width(
    name: str, ends: list[str]
) -> None:
    space = search_spaces.create(name, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    full = space.build()
    assert stage_ends(full, x) == ends
    narrow = extract(full, space.spec(space.uniform_widths_for_macs(0.3)))
    assert stage_ends(narrow, x) == ends


def test_fine_tuning_with_kernel_features_trains_towards_the_teacher_and_unhooks() -> None:
    train, _ = loaders()
    teacher = small_cnn(5)
    config = TrainConfig(epochs=2, **FAST)
    runs = {}
    for features in ("none", "kernel"):
        torch.manual_seed(0)
        student = nn.Sequential(  # 3 channels where the teacher has 8
            nn.Conv2d(1, 3, 3, padding=1, bias=False),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(3, 2),
        )
        distill = Distillation(kd_alpha=0.9, kd_features=features, kd_feature_weight=100.0)
        train_model(student, train, config=config, teacher=teacher, distill=distill, progress=False)
        runs[features] = student
        hooked = [m for m in (*student.modules(), *teacher.modules()) if m._forward_hooks]
        assert not hooked  # the taps are gone: the network saves and scripts as it is
    assert not states_equal(runs["none"].state_dict(), runs["kernel"].state_dict())


def test_feature_distillation_without_logit_distillation_is_refused() -> None:
    with pytest.raises(ConfigError, match="--kd-features kernel adds to the distillation"):
        Distillation(kd_alpha=0.0, kd_features="kernel").validate()
