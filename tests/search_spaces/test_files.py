"""search_spaces.files: atomic writes with the user's umask, and safe loads."""

from __future__ import annotations

import os
import pickle
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from search_spaces.errors import NasError, WriteError
from search_spaces.files import atomic_torch_save, atomic_write_text, torch_load


@pytest.fixture
def umask() -> Iterator[int]:
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_files_are_created_with_the_users_umask(tmp_path: Path, umask: int) -> None:
    atomic_write_text(tmp_path / "a.txt", "hello")
    atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "w.pt")
    for name in ("a.txt", "w.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask  # 0640


def test_a_failed_write_keeps_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    atomic_torch_save({"w": torch.ones(3)}, path)

    class Unsaveable:
        def __reduce__(self) -> tuple[object, ...]:
            raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match=r"No space left on device.*nothing was half-written"):
        atomic_torch_save({"w": Unsaveable()}, path)
    assert torch.equal(torch_load(path, "weights")["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]  # no temporary file left


class _Payload:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path: Path) -> None:
    created = tmp_path / "created-by-payload"
    torch.save(
        {"w": _Payload(created)}, tmp_path / "evil.pt", pickle_protocol=pickle.HIGHEST_PROTOCOL
    )
    with pytest.raises(NasError, match="holds Python objects") as info:
        torch_load(tmp_path / "evil.pt", "weights")
    assert "weights_only=False" not in str(info.value)
    assert not created.exists()
