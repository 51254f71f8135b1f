"""CIFAR-style ResNets (He et al. 2016, section 4.2): ResNet-20/32/44/56/110 (listed), and any
depth ``6n + 2`` by name (``resnet8``, ``resnet14_b``: what compound scaling builds).

Three stages of ``n = (depth - 2) / 6`` basic blocks with 16, 32 and 64 channels, a 3x3 stem and a
linear head; module names follow torchvision (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``layerK.0.downsample``, ``fc``).

Two shortcut kinds, as in the paper:

* ``resnet20`` ... ``resnet110`` use option A: where a stage doubles the channels the shortcut
  subsamples and pads with zero channels (no parameters). This is the network most pruning
  papers (L1, FPGM, HRank, CHIP) report on. The padding fixes the channel layout of each residual
  stream, so under option A **only the block-internal widths are searchable** (the output of the
  first conv of every block); the residual streams stay at 16/32/64.
* ``resnet20_b`` ... ``resnet110_b`` use option B: a 1x1 projection conv + BN where the shape
  changes. Every residual stream (the stem and all block outputs of a stage, plus the projection
  into it) is one coupled unit named ``layer1``/``layer2``/``layer3``, searchable together with
  the block-internal widths, as in TAS.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.space import SPACES, SearchSpace, SpaceEntry, add_resolver, register

DEPTHS = (20, 32, 44, 56, 110)  # registered (listed by nas spaces); any 6n + 2 is accepted
STAGE_WIDTHS = (16, 32, 64)


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: spatial subsampling plus zero channels on both sides."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.downsample = ZeroPadShortcut(in_planes, planes, stride)
            else:
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, shortcut: str, num_classes: int, in_channels: int) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        in_planes = STAGE_WIDTHS[0]
        stages = []
        for i, planes in enumerate(STAGE_WIDTHS):
            blocks = []
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, shortcut))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(STAGE_WIDTHS[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class CifarResNetSpace(SearchSpace):
    family = "cifar_resnet"

    def __init__(
        self,
        name: str,
        depth: int,
        shortcut: str,
        *,
        num_classes: int,
        in_channels: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__(
            name, num_classes=num_classes, in_channels=in_channels, input_size=input_size
        )
        self.depth = depth
        self.shortcut = shortcut

    def _skeleton(self) -> nn.Module:
        return CifarResNet(self.depth, self.shortcut, self.num_classes, self.in_channels)

    def _layer_units(self, model: nn.Module) -> dict[str, tuple[str | None, str | None]]:
        searchable_streams = self.shortcut == "B"

        def stream(stage: int) -> str | None:
            return f"layer{stage}" if searchable_streams else None

        units: dict[str, tuple[str | None, str | None]] = {
            "conv1": (None, stream(1)),
            "bn1": (stream(1), stream(1)),
        }
        for s in range(1, 4):
            stage_mod = model.get_submodule(f"layer{s}")
            assert isinstance(stage_mod, nn.Sequential)
            for b, block in enumerate(stage_mod):
                p = f"layer{s}.{b}"
                s_in = stream(s - 1 if (b == 0 and s > 1) else s)
                inner = f"{p}.conv1"
                units[f"{p}.conv1"] = (s_in, inner)
                units[f"{p}.bn1"] = (inner, inner)
                units[f"{p}.conv2"] = (inner, stream(s))
                units[f"{p}.bn2"] = (stream(s), stream(s))
                if isinstance(block.downsample, nn.Sequential):
                    units[f"{p}.downsample.0"] = (s_in, stream(s))
                    units[f"{p}.downsample.1"] = (stream(s), stream(s))
        units["fc"] = (stream(3), None)
        return units


def _factory(depth: int, shortcut: str):  # type: ignore[no-untyped-def]
    def make(
        name: str, num_classes: int, in_channels: int, input_size: tuple[int, int]
    ) -> SearchSpace:
        return CifarResNetSpace(
            name,
            depth,
            shortcut,
            num_classes=num_classes,
            in_channels=in_channels,
            input_size=input_size,
        )

    return make


for _depth in DEPTHS:
    register(
        f"resnet{_depth}",
        _factory(_depth, "A"),
        default_num_classes=10,
        default_input_size=(32, 32),
        description=f"CIFAR ResNet-{_depth}, zero-padding shortcuts (option A)",
    )
    register(
        f"resnet{_depth}_b",
        _factory(_depth, "B"),
        default_num_classes=10,
        default_input_size=(32, 32),
        description=f"CIFAR ResNet-{_depth}, 1x1 projection shortcuts (option B)",
    )


_ANY_DEPTH = re.compile(r"(?:cifar_)?resnet(\d+)(_b)?")


def cifar_name(depth: int, shortcut: str) -> str:
    """The name of the CIFAR ResNet of ``depth`` (6n + 2) with option ``shortcut`` (A or B):
    ``resnetD`` unless another space holds that name (torchvision's ``resnet50`` and
    ``resnet152``), then ``cifar_resnetD``."""
    suffix = "_b" if shortcut == "B" else ""
    name = f"resnet{depth}{suffix}"
    if depth in DEPTHS or f"resnet{depth}" not in SPACES:
        return name
    return f"cifar_{name}"


def _any_depth(name: str) -> SpaceEntry | None:
    """``resnetD`` / ``resnetD_b`` for any depth ``D = 6n + 2`` (n >= 1) the registry does not
    list (``resnet8``, ``resnet14``: the depths compound scaling may choose), and
    ``cifar_resnetD[_b]`` for every such depth (``cifar_resnet50``: ``resnet50`` is
    torchvision's)."""
    match = _ANY_DEPTH.fullmatch(name)
    if match is None:
        return None
    depth = int(match.group(1))
    if depth < 8 or (depth - 2) % 6:
        return None
    shortcut = "B" if match.group(2) else "A"
    return SpaceEntry(
        name,
        _factory(depth, shortcut),
        default_num_classes=10,
        default_input_size=(32, 32),
        description=f"CIFAR ResNet-{depth}, option {shortcut} shortcuts",
    )


add_resolver(_any_depth)
