"""Recognising a user's network: which registered space has exactly its tensors."""

from __future__ import annotations

from torch import nn

from search_spaces.errors import SpaceError
from search_spaces.space import SPACES, SearchSpace, create, get_entry

__all__ = ["identify"]


def identify(model: nn.Module, *, input_size: tuple[int, int]) -> SearchSpace:
    """The registered space whose full-width network has exactly ``model``'s tensors.

    Classes and input channels are read from ``fc`` and ``conv1``; a torchvision ResNet built by
    the user (``torchvision.models.resnet50(num_classes=10)``) is recognised as ``resnet50``.
    """
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    fc, conv1 = shapes.get("fc.weight"), shapes.get("conv1.weight")
    if fc is None or conv1 is None or len(fc) != 2 or len(conv1) != 4:
        raise SpaceError("the model is not a ResNet of a registered space (no conv1/fc layers)")
    size = (int(input_size[0]), int(input_size[1]))
    for name in SPACES:
        candidate = get_entry(name).factory(name, fc[0], conv1[1], size)
        if candidate.state_shapes == shapes:
            return create(name, num_classes=fc[0], in_channels=conv1[1], input_size=size)
    raise SpaceError(
        f"the model matches no registered space at {size[0]}x{size[1]} inputs "
        f"(torchvision spaces use a 3x3 stride-1 stem for inputs of 64 px or less)"
    )
