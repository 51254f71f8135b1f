"""What every parser of the command line shares (torch-free, like the command table)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["Parser", "argv_command"]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), and flags are spelled out
    (``--epoch`` is an error, not ``--epochs``: a typo must not pick an option)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def argv_command(argv: Sequence[str]) -> tuple[int, str] | None:
    """(index, name) of the first word of ``argv`` that is not an option."""
    for i, word in enumerate(argv):
        if not word.startswith("-"):
            return i, word
    return None
