"""User-facing errors.

Every problem caused by what a user passed in (a name, a file, a budget, a path) is raised as a
:class:`NasError` subclass with a one-line message. The command line turns these into a single
``error: ...`` line on stderr and exit code 2; Python callers can catch them by type. The classes
live in ``search_spaces.errors`` (the bottom layer, so every package can raise them).
"""

from __future__ import annotations

from search_spaces.errors import (
    ConfigError,
    DataError,
    NasError,
    SpaceError,
    SpecError,
    WeightsError,
    WriteError,
    first_line,
)

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
