"""User-facing errors.

Every problem caused by what a user passed in (a name, a file, a budget, a path) is raised as a
:class:`NasError` subclass with a one-line message. The command line turns these into a single
``error: ...`` line on stderr and exit code 2; Python callers can catch them by type. The classes
live in ``search_spaces.errors`` (the bottom layer, so every package can raise them).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

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
    "require_extra",
]


def require_extra(modules: Sequence[str], extra: str, what: str) -> None:
    """Refuse ``what`` in one line naming the optional extra (``pip install -e ".[extra]"``)
    where one of ``modules`` cannot be imported."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(
                f"{what} needs the {extra} extra ({name} is not installed): "
                f'pip install -e ".[{extra}]"'
            ) from None
