"""MobileNetV2 for CIFAR-sized images, as a traced search space: ``mobilenet_v2_cifar``.

torchvision's ``MobileNetV2`` at width 0.5 with the usual 32x32 adaptation: a stride-1 stem
and the 24-channel stage at stride 1, so a 32x32 image ends at 4x4 rather than 1x1 (27.97 M
MACs and 0.70 M parameters at 10 classes, against ResNet-20's 40.6 M and 0.27 M). Its units are
found by tracing (:mod:`search_spaces.traced`), as for any network; registering it by name
gives the benchmarks a mobile network on the hard task and dogfoods the factory path.
"""

from __future__ import annotations

from torch import nn

from search_spaces.space import register
from search_spaces.traced import space_factory

__all__ = ["WIDTH", "cifar_mobilenet_v2"]

WIDTH = 0.5
# (expansion, channels, blocks, stride): torchvision's table with the 24-channel stage at stride 1
SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 1],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


def cifar_mobilenet_v2(
    num_classes: int = 10, in_channels: int = 3, width: float = WIDTH
) -> nn.Module:
    """The network (a torchvision ``MobileNetV2``, its stem at stride 1)."""
    from torchvision.models import MobileNetV2

    model = MobileNetV2(
        num_classes=num_classes, width_mult=width, inverted_residual_setting=SETTING
    )
    stem = model.features[0][0]
    assert isinstance(stem, nn.Conv2d)
    model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, 1, 1, bias=False)
    return model


def _network(num_classes: int, in_channels: int, size: tuple[int, int]) -> nn.Module:
    return cifar_mobilenet_v2(num_classes, in_channels)


register(
    "mobilenet_v2_cifar",
    space_factory(_network),
    default_num_classes=10,
    default_input_size=(32, 32),
    description="MobileNetV2 (width 0.5) with a stride-1 stem for 32x32 images; units traced",
)
