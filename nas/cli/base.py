"""What every parser of the command line shares (torch-free, like the command table)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["Parser", "argv_command"]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def argv_command(argv: Sequence[str]) -> tuple[int, str] | None:
    """(index, name) of the first word of ``argv`` that is not an option."""
    for i, word in enumerate(argv):
        if not word.startswith("-"):
            return i, word
    return None
