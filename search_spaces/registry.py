"""The one generic :class:`Registry`.

:class:`Registry` is used for everything the toolkit chooses by name: search spaces
(:data:`search_spaces.SPACES`, in :mod:`search_spaces.space`), and in ``nas`` gate strategies,
channel-importance criteria, cost models, temperature schedules, dataset kinds and selection
methods. It is small and strict, as torchvision's are: ``register``
(also as a decorator) refuses a name that is taken, an unknown name is answered with the list of
known ones, and ``create(name, *args, **options)`` refuses options its factory does not take.
It lives in the lowest layer so that every package can use it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from search_spaces.errors import ConfigError, NasError

__all__ = ["Registry", "option_names"]

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
