"""Small, safe file helpers for every layer: atomic writes and safe tensor loading.

Every file the toolkit writes goes through :func:`atomic_write_bytes` (write to a temporary file in
the same directory, then ``os.replace``), so an interrupted run never leaves a half-written file.
Every tensor file it reads goes through :func:`torch_load` (``weights_only=True``: a file that
would run code is refused, not executed). In a run of several processes (torchrun) only rank 0
writes (:func:`is_writer`): the writes of the others do nothing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from search_spaces.errors import WeightsError, WriteError, first_line

__all__ = [
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "factory_digest",
    "is_writer",
    "torch_load",
]


def is_writer() -> bool:
    """Whether this process writes files: rank 0 of a run of several processes (torchrun sets
    ``RANK``), or any process not launched as one of several."""
    return os.environ.get("RANK", "0") in ("", "0")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    _atomic(Path(path), lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically. Only tensors/containers: loads with weights_only."""
    _atomic(Path(path), lambda f: torch.save(obj, f))


def _umask() -> int:
    """The process's file-creation mask (read without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[Any], object]) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``: the old file
    stays whole until the new one is complete on disk. A failed write (a full disk) is a
    one-line :class:`WriteError`, and leaves no temporary file behind. Nothing on a rank
    other than 0 (:func:`is_writer`)."""
    if not is_writer():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or first_line(exc)}") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # like any other tool's files, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a crash never leaves it empty
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise WriteError(
            f"cannot write {path}: {exc.strerror or first_line(exc)} (nothing was half-written)"
        ) from None
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
        with warnings.catch_warnings():  # torch's advice (load unsafely) must not be printed
            warnings.simplefilter("ignore")
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc) or ("Unsupported operand" in str(exc) and zipfile.is_zipfile(p)):
            # a class or function to import, or (in a torch.save archive) an opcode that only
            # the unsafe loader runs
            raise WeightsError(
                f"refused {what} {p}: it holds Python objects, not only tensors (nas never runs "
                "code from a file; save a state_dict: torch.save(model.state_dict(), path))"
            ) from None
        raise WeightsError(
            f"cannot read {what} {p}: not a tensor file (corrupt, or not written by torch.save)"
        ) from None
    except Exception as exc:  # torch raises many types for corrupt/truncated files
        reason = first_line(exc)
        if "PytorchStreamReader" in reason or "zip archive" in reason:
            reason = "truncated or corrupt (not a complete torch.save file)"
        raise WeightsError(f"cannot read {what} {p}: {reason}") from None


def factory_digest(space: str) -> str | None:
    """The SHA-256 of the source file of a file-factory space (``path/to/file.py:factory``);
    None for any other space name or a file that is gone."""
    where = space.rpartition(":")[0]
    if not where.endswith(".py") or not Path(where).is_file():
        return None
    return hashlib.sha256(Path(where).read_bytes()).hexdigest()
