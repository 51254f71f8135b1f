"""Errors caused by user input, shared by the whole toolkit.

They live in the lowest layer (``search_spaces``) so that every package can raise them without
importing upward; ``nas.errors`` re-exports them. Each carries a one-line message; the command
line prints it as ``error: ...`` and exits with code 2.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "NasError",
    "SpaceError",
    "SpecError",
    "WeightsError",
    "WriteError",
    "first_line",
]


class NasError(Exception):
    """Base class of all errors caused by user input."""


class SpecError(NasError, ValueError):
    """A width spec (``arch.json``) is invalid for its search space."""


class SpaceError(NasError, KeyError):
    """An unknown search space name, or a duplicate registration."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it a plain line.
        return str(self.args[0]) if self.args else ""


class DataError(NasError, ValueError):
    """A dataset name, path or file that cannot be used."""


class WeightsError(NasError, ValueError):
    """A weights file that is missing, corrupt or does not match the architecture."""


class WriteError(NasError, OSError):
    """An output that could not be written (a full disk, a lost permission): nothing
    half-written is left, and the earlier version of the file, if any, is kept."""


class ConfigError(NasError, ValueError):
    """An option value that cannot be used (bad budget, bad schedule, unknown strategy...)."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of a library's error message (its type if there is none), to
    quote inside a one-line :class:`NasError`."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
