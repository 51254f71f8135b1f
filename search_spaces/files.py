"""Small, safe file helpers for every layer: atomic writes and safe tensor loading.

Every file the toolkit writes goes through :func:`atomic_write_bytes` (write to a temporary file in
the same directory, then ``os.replace``), so an interrupted run never leaves a half-written file.
Every tensor file it reads goes through :func:`torch_load` (``weights_only=True``: a file that
would run code is refused, not executed).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from search_spaces.errors import WeightsError, first_line

__all__ = ["atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "torch_load"]


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    _atomic(Path(path), lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically. Only tensors/containers: loads with weights_only."""
    _atomic(Path(path), lambda f: torch.save(obj, f))


def _atomic(path: Path, write: Callable[[Any], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def torch_load(path: str | Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a missing, corrupt or unsafe file
    raises :class:`WeightsError` naming ``what`` in one line."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{what} not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        raise WeightsError(f"cannot read {what} {p}: {first_line(exc)}") from None
