"""A small strict registry of search spaces: ``register``, ``create``, ``list_spaces``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from torch import nn

from search_spaces._core import SearchSpace
from search_spaces.errors import SpaceError, SpecError

SpaceFactory = Callable[[str, int, int, tuple[int, int]], SearchSpace]


@dataclass(frozen=True)
class SpaceEntry:
    name: str
    factory: SpaceFactory
    default_num_classes: int
    default_input_size: tuple[int, int]
    description: str


_REGISTRY: dict[str, SpaceEntry] = {}


def register(
    name: str,
    factory: SpaceFactory,
    *,
    default_num_classes: int,
    default_input_size: tuple[int, int],
    description: str,
) -> None:
    """Add a space. A name that is already registered is refused."""
    if name in _REGISTRY:
        raise SpaceError(f"search space {name!r} is already registered")
    _REGISTRY[name] = SpaceEntry(
        name, factory, default_num_classes, default_input_size, description
    )


def list_spaces() -> list[str]:
    """Names of all registered spaces, in registration order."""
    return list(_REGISTRY)


def get_entry(name: str) -> SpaceEntry:
    """The registry entry of ``name``; an unknown name raises :class:`SpaceError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SpaceError(
            f"unknown search space {name!r}; choose one of: {', '.join(_REGISTRY)}"
        ) from None


def create(
    name: str,
    *,
    num_classes: int | None = None,
    in_channels: int = 3,
    input_size: tuple[int, int] | None = None,
) -> SearchSpace:
    """The search space ``name`` for a task (classes, image channels, input size H x W).

    Spaces are immutable and cached: asking twice for the same task returns the same object.
    """
    entry = get_entry(name)
    classes = entry.default_num_classes if num_classes is None else int(num_classes)
    size = (
        entry.default_input_size if input_size is None else (int(input_size[0]), int(input_size[1]))
    )
    if classes < 1:
        raise SpecError(f"num_classes must be at least 1, got {classes}")
    if in_channels < 1:
        raise SpecError(f"in_channels must be at least 1, got {in_channels}")
    if min(size) < 1:
        raise SpecError(f"input size must be positive, got {size[0]}x{size[1]}")
    return _create(name, classes, int(in_channels), size)


@lru_cache(maxsize=64)
def _create(name: str, num_classes: int, in_channels: int, size: tuple[int, int]) -> SearchSpace:
    space = _REGISTRY[name].factory(name, num_classes, in_channels, size)
    try:
        space.layers  # trace once, so errors (e.g. an input too small) surface here  # noqa: B018
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise SpecError(f"space {name} cannot run on {size[0]}x{size[1]} inputs: {first}") from None
    return space


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
    for name, entry in _REGISTRY.items():
        candidate = entry.factory(name, fc[0], conv1[1], size)
        if candidate.state_shapes == shapes:
            return create(name, num_classes=fc[0], in_channels=conv1[1], input_size=size)
    raise SpaceError(
        f"the model matches no registered space at {size[0]}x{size[1]} inputs "
        f"(torchvision spaces use a 3x3 stride-1 stem for inputs of 64 px or less)"
    )
