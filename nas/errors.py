"""User-facing errors.

Every problem caused by what a user passed in (a name, a file, a budget, a path) is raised as a
:class:`NasError` subclass with a one-line message. The command line turns these into a single
``error: ...`` line on stderr and exit code 2; Python callers can catch them by type.
"""

from __future__ import annotations

from search_spaces.errors import NasError, SpaceError, SpecError

__all__ = [
    "ConfigError",
    "DataError",
    "NasError",
    "SpaceError",
    "SpecError",
    "WeightsError",
    "first_line",
]


class DataError(NasError, ValueError):
    """A dataset name, path or file that cannot be used."""


class WeightsError(NasError, ValueError):
    """A weights file that is missing, corrupt or does not match the architecture."""


class ConfigError(NasError, ValueError):
    """An option value that cannot be used (bad budget, bad schedule, unknown strategy...)."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of a library's error message (its type if there is none), to
    quote inside a one-line :class:`NasError`."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
