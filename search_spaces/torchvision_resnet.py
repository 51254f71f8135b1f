"""torchvision ResNets as search spaces: ResNet-18/34/50/101/152, Wide ResNet-50-2/101-2.

The networks are torchvision's own classes (``torchvision.models.ResNet``), so a user's
torchvision model or a torchvision checkpoint (state_dict) is a valid starting point and the
pruned network keeps torchvision's key names.

The stem and head adapt to the data:

* ``conv1`` takes the data's channels (1 for grayscale, 3 for RGB, ...);
* for small inputs (shorter side :data:`SMALL_INPUT` pixels or less) the ImageNet stem (7x7
  stride-2 conv + max-pool, 4x downsampling) is replaced by a 3x3 stride-1 conv and no pooling,
  as is usual for CIFAR-sized images;
* ``fc`` has one output per class.

Units: every stage's residual stream ``layer1`` ... ``layer4`` (coupled: the projection shortcut and
the last conv of every block; for ResNet-18/34 the stem too, because ``layer1`` starts with an
identity shortcut), the stem ``conv1`` where it is separate (Bottleneck networks), and the
block-internal convs ``layerS.B.conv1`` (and ``layerS.B.conv2`` in Bottleneck blocks).
"""

from __future__ import annotations

from torch import nn

from search_spaces.space import SearchSpace, register

SMALL_INPUT = 64

# the torchvision.models builders (imported when a network is built: torchvision is slow to load)
ARCHS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "wide_resnet50_2",
    "wide_resnet101_2",
)


def uses_small_stem(input_size: tuple[int, int]) -> bool:
    """Whether inputs of this size get the 3x3 stride-1 stem without max-pooling."""
    return min(input_size) <= SMALL_INPUT


def adapt_stem(model: nn.Module, in_channels: int, input_size: tuple[int, int]) -> None:
    """A torchvision ResNet's stem for the data: ``in_channels`` input channels, and for small
    inputs the 3x3 stride-1 conv without max-pooling."""
    conv1 = model.get_submodule("conv1")
    assert isinstance(conv1, nn.Conv2d)
    width = conv1.out_channels
    if uses_small_stem(input_size):
        model.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)


class TorchvisionResNetSpace(SearchSpace):
    family = "torchvision_resnet"

    def __init__(
        self,
        name: str,
        arch: str,
        *,
        num_classes: int,
        in_channels: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__(
            name, num_classes=num_classes, in_channels=in_channels, input_size=input_size
        )
        self.arch = arch

    def _skeleton(self) -> nn.Module:
        import torchvision

        model = getattr(torchvision.models, self.arch)(weights=None, num_classes=self.num_classes)
        adapt_stem(model, self.in_channels, self.input_size)
        return model

    def _layer_units(self, model: nn.Module) -> dict[str, tuple[str | None, str | None]]:
        from torchvision.models.resnet import Bottleneck, ResNet

        assert isinstance(model, ResNet)
        first = model.layer1[0]
        stem = "conv1" if first.downsample is not None else "layer1"
        units: dict[str, tuple[str | None, str | None]] = {
            "conv1": (None, stem),
            "bn1": (stem, stem),
        }
        prev = stem
        for s in range(1, 5):
            stage = f"layer{s}"
            for b, block in enumerate(model.get_submodule(stage)):
                p = f"{stage}.{b}"
                s_in = prev if b == 0 else stage
                convs = (
                    ["conv1", "conv2", "conv3"]
                    if isinstance(block, Bottleneck)
                    else ["conv1", "conv2"]
                )
                c_in = s_in
                for i, conv in enumerate(convs):
                    c_out = stage if i == len(convs) - 1 else f"{p}.{conv}"
                    units[f"{p}.{conv}"] = (c_in, c_out)
                    units[f"{p}.bn{conv[-1]}"] = (c_out, c_out)
                    c_in = c_out
                if block.downsample is not None:
                    units[f"{p}.downsample.0"] = (s_in, stage)
                    units[f"{p}.downsample.1"] = (stage, stage)
            prev = stage
        units["fc"] = ("layer4", None)
        return units

    def _unit_kind(self, unit: str) -> str:
        if unit == "conv1":
            return "stem"
        return "stage" if unit in ("layer1", "layer2", "layer3", "layer4") else "block"


def _factory(arch: str):  # type: ignore[no-untyped-def]
    def make(
        name: str, num_classes: int, in_channels: int, input_size: tuple[int, int]
    ) -> SearchSpace:
        return TorchvisionResNetSpace(
            name, arch, num_classes=num_classes, in_channels=in_channels, input_size=input_size
        )

    return make


for _arch in ARCHS:
    register(
        _arch,
        _factory(_arch),
        default_num_classes=1000,
        default_input_size=(224, 224),
        description=f"torchvision {_arch}; stem and head adapt to the data",
    )
