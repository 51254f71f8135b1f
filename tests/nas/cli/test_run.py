"""nas.cli.run: running one command (a closed pipe is not an error)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import search_spaces


@pytest.mark.slow  # a fresh interpreter loads nas
@pytest.mark.e2e
def test_a_closed_pipe_is_not_an_error() -> None:
    proc = subprocess.run(
        f"{sys.executable} -m nas.cli spaces | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip().split()[0] == search_spaces.list_spaces()[0]
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
