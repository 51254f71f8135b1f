"""Search spaces: ResNets whose channel widths can be chosen (the bottom layer of the toolkit).

>>> import search_spaces
>>> space = search_spaces.create("resnet56", num_classes=10)
>>> space.macs()  # conv + linear MACs at 32x32
125485696
>>> model = space.build(space.uniform_widths(0.5))

This package imports neither ``predictors`` nor ``nas``; the errors, file helpers and the generic
:class:`Registry` every layer uses live here.
"""

from search_spaces import cifar_mobilenet as _cifar_mobilenet  # noqa: F401
from search_spaces import cifar_resnet as _cifar_resnet  # noqa: F401  (registers the spaces)
from search_spaces import torchvision_resnet as _torchvision_resnet  # noqa: F401
from search_spaces import traced as _traced  # noqa: F401  (resolves torchvision:X, module:f)
from search_spaces.identify import identify
from search_spaces.layers import Layer, Unit, round_width
from search_spaces.registry import Registry
from search_spaces.space import (
    SPACE_NAMES,
    SPACES,
    SearchSpace,
    SpaceEntry,
    WidthSpec,
    create,
    get_entry,
    list_spaces,
    register,
)

__all__ = [
    "SPACES",
    "SPACE_NAMES",
    "Layer",
    "Registry",
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
