"""Search spaces: ResNets whose channel widths can be chosen.

>>> import search_spaces
>>> space = search_spaces.create("resnet56", num_classes=10)
>>> space.macs()  # conv + linear MACs at 32x32
125485696
>>> model = space.build(space.uniform_widths(0.5))
"""

from search_spaces import cifar_resnet as _cifar_resnet  # noqa: F401  (registers the spaces)
from search_spaces import torchvision_resnet as _torchvision_resnet  # noqa: F401
from search_spaces._core import Layer, SearchSpace, Unit, round_width
from search_spaces._registry import SpaceEntry, create, get_entry, identify, list_spaces, register
from search_spaces.spec import WidthSpec

__all__ = [
    "Layer",
    "SearchSpace",
    "SpaceEntry",
    "Unit",
    "WidthSpec",
    "create",
    "get_entry",
    "identify",
    "list_spaces",
    "register",
    "round_width",
]
