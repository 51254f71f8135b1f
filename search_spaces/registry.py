"""Registries: the one generic :class:`Registry`, and the registry of search spaces.

:class:`Registry` is used for everything the toolkit chooses by name: search spaces (here), and
in ``nas`` gate strategies, channel-importance criteria, cost models, temperature schedules,
dataset kinds and selection methods. It is small and strict, as torchvision's are: ``register``
(also as a decorator) refuses a name that is taken, an unknown name is answered with the list of
known ones, and ``create(name, *args, **options)`` refuses options its factory does not take.
It lives in the lowest layer so that every package can use it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from search_spaces.errors import ConfigError, NasError, SpaceError, SpecError

if TYPE_CHECKING:
    from torch import nn

    from search_spaces.space import SearchSpace

__all__ = [
    "SPACES",
    "Registry",
    "SpaceEntry",
    "create",
    "get_entry",
    "identify",
    "list_spaces",
    "register",
]

T = TypeVar("T")
F = TypeVar("F")  # what a decorator registers keeps its own type


class Registry(Generic[T]):
    """Names mapped to entries (classes, factories or values) of one kind.

    >>> schedules = Registry[object]("temperature schedule")
    >>> @schedules.register("linear")
    ... def linear(t: float) -> float: return t
    >>> schedules.names()
    ['linear']
    """

    def __init__(self, kind: str, *, error: type[NasError] = ConfigError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    @overload
    def register(
        self, name: str, entry: None = None, *, description: str = ""
    ) -> Callable[[F], F]: ...

    @overload
    def register(self, name: str, entry: T, *, description: str = "") -> T: ...

    def register(
        self, name: str, entry: T | None = None, *, description: str = ""
    ) -> T | Callable[[F], F]:
        """Add ``entry`` under ``name`` (or, without ``entry``, return a decorator that does).
        A name that is already registered is refused."""

        def add(obj: Any) -> Any:
            if name in self._entries:
                raise self.error(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            self._descriptions[name] = description or _first_doc_line(obj)
            return obj

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (plugins and tests that register temporarily)."""
        self.get(name)
        del self._entries[name]
        del self._descriptions[name]

    def get(self, name: str) -> T:
        """The entry of ``name``; an unknown name raises the registry's error with the list."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.error(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self._entries)}"
            ) from None

    def check(self, name: str) -> str:
        """``name`` if it is registered (else the registry's error); for validating options."""
        self.get(name)
        return name

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def describe(self, name: str) -> str:
        self.get(name)
        return self._descriptions[name]

    def create(self, name: str, *args: Any, **options: Any) -> Any:
        """Call the entry of ``name`` with ``args`` and keyword ``options``; an option the entry
        does not take is refused with the list of those it does."""
        entry = self.get(name)
        if options:
            accepted = option_names(entry)  # type: ignore[arg-type]
            if accepted is not None:
                unknown = sorted(set(options) - set(accepted))
                if unknown:
                    takes = ", ".join(accepted) if accepted else "none"
                    raise self.error(
                        f"{self.kind} {name!r} has no option {unknown[0]!r} (its options: {takes})"
                    )
        return entry(*args, **options)  # type: ignore[operator]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


def option_names(factory: Callable[..., Any]) -> list[str] | None:
    """The keyword-only parameters of ``factory`` (its options), or None if it takes
    ``**kwargs`` (anything goes)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _first_doc_line(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


# -- search spaces ---------------------------------------------------------------------------------
SpaceFactory = Callable[[str, int, int, tuple[int, int]], "SearchSpace"]


@dataclass(frozen=True)
class SpaceEntry:
    name: str
    factory: SpaceFactory
    default_num_classes: int
    default_input_size: tuple[int, int]
    description: str


SPACES: Registry[SpaceEntry] = Registry("search space", error=SpaceError)


def register(
    name: str,
    factory: SpaceFactory,
    *,
    default_num_classes: int,
    default_input_size: tuple[int, int],
    description: str,
) -> None:
    """Add a space. A name that is already registered is refused."""
    SPACES.register(
        name,
        SpaceEntry(name, factory, default_num_classes, default_input_size, description),
        description=description,
    )


def list_spaces() -> list[str]:
    """Names of all registered spaces, in registration order."""
    return SPACES.names()


def get_entry(name: str) -> SpaceEntry:
    """The registry entry of ``name``; an unknown name raises :class:`SpaceError`."""
    return SPACES.get(name)


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
    space = get_entry(name).factory(name, num_classes, in_channels, size)
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
    for name in SPACES:
        candidate = get_entry(name).factory(name, fc[0], conv1[1], size)
        if candidate.state_shapes == shapes:
            return create(name, num_classes=fc[0], in_channels=conv1[1], input_size=size)
    raise SpaceError(
        f"the model matches no registered space at {size[0]}x{size[1]} inputs "
        f"(torchvision spaces use a 3x3 stride-1 stem for inputs of 64 px or less)"
    )
