"""nas.jobs.spaces: nas spaces."""

from __future__ import annotations

import pytest

import search_spaces
from tests.nas.conftest import run


@pytest.mark.e2e
def test_spaces_lists_every_space(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spaces")
    assert code == 0
    listed, _, note = out.partition("\n\n")
    assert [line.split()[0] for line in listed.splitlines()] == search_spaces.list_spaces()
    assert "torchvision:NAME" in note and "file.py:factory" in note  # traced spaces
