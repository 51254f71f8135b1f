"""Errors caused by user input, shared by the whole toolkit.

They live in the lowest layer (``search_spaces``) so that every package can raise them without
import cycles; ``nas.errors`` re-exports them with the rest. Each carries a one-line message; the
command line prints it as ``error: ...`` and exits with code 2.
"""

from __future__ import annotations


class NasError(Exception):
    """Base class of all errors caused by user input."""


class SpecError(NasError, ValueError):
    """A width spec (``arch.json``) is invalid for its search space."""


class SpaceError(NasError, KeyError):
    """An unknown search space name, or a duplicate registration."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it a plain line.
        return str(self.args[0]) if self.args else ""
