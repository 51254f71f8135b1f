"""Small, safe file helpers: JSON/YAML/CSV, state_dict files, output directories.

Every file the toolkit writes goes through :func:`atomic_write_bytes` (write to a temporary file in
the same directory, then ``os.replace``), so an interrupted run never leaves a half-written file;
the atomic writes and the safe :func:`torch_load` live in ``search_spaces.files`` (the bottom
layer) and are re-exported here.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from nas.errors import ConfigError, NasError, WeightsError
from search_spaces.files import atomic_torch_save, atomic_write_bytes, atomic_write_text, torch_load

__all__ = [
    "NAS_COMMANDS",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable",
    "json_safe",
    "load_state_dict_file",
    "prepare_out_dir",
    "read_csv",
    "read_json",
    "run_output",
    "torch_load",
    "write_json",
    "write_yaml",
    "written_by",
    "written_by_nas",
]


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write a JSON object (indented, keys in insertion order) atomically; non-finite numbers
    (NaN, inf: not JSON) are written as null (:func:`json_safe`)."""
    atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, inf: not JSON) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def read_json(path: str | Path, what: str = "JSON file") -> dict[str, Any]:
    """Read a JSON object; a missing or malformed file raises :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {p} must hold a JSON object")
    return data


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header; an unreadable file is a :class:`ConfigError`."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def write_yaml(path: str | Path, data: Mapping[str, Any]) -> None:
    """Write a mapping as YAML (block style, insertion order) atomically."""
    atomic_write_text(path, yaml.safe_dump(dict(data), sort_keys=False))


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state_dict with ``weights_only=True``.

    Accepts a plain state_dict or a checkpoint holding one under ``"state_dict"``/``"model"``.
    Missing, corrupt or non-tensor files raise :class:`WeightsError` with one line.
    """
    p = Path(path)
    obj = torch_load(p, "weights file")
    if isinstance(obj, dict) and not _is_state_dict(obj):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, dict) and _is_state_dict(inner):
                obj = inner
                break
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise WeightsError(f"{p} does not hold a state_dict (a mapping of names to tensors)")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def _is_state_dict(obj: dict[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


NAS_COMMANDS = ("train", "extract", "search", "rank", "sweep", "transfer")


def prepare_out_dir(path: str | Path, *, overwrite: bool = False) -> Path:
    """Check that ``path`` can receive a run's outputs, without creating or changing anything.

    A directory that already holds files is refused unless ``overwrite`` is set and an earlier
    ``nas`` run wrote it (:func:`written_by_nas`): ``--overwrite`` replaces a run, never a folder
    of the user's own files. The nearest existing ancestor must be a writable directory.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"output path exists and is not a directory: {p}")
    if p.is_dir() and any(p.iterdir()):
        if not overwrite:
            raise ConfigError(f"output directory {p} is not empty (pass --overwrite to replace it)")
        if not written_by_nas(p):
            raise ConfigError(
                f"output directory {p} holds files nas did not write; --overwrite only replaces "
                "an earlier nas run (choose another --out)"
            )
    check_writable(p)
    return p


def check_writable(path: Path) -> None:
    """``path`` exists as a writable directory or can be created."""
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"cannot create {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {ancestor} (permission denied)")


def written_by(path: Path) -> str | None:
    """The ``nas`` command that wrote the directory ``path`` (named by its ``args.yaml``), or
    None."""
    try:
        data = yaml.safe_load((path / "args.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    command = data.get("command") if isinstance(data, dict) else None
    return command if command in NAS_COMMANDS else None


def written_by_nas(path: Path) -> bool:
    """``path/args.yaml`` exists and names the ``nas`` command that wrote the directory."""
    return written_by(path) is not None


@contextlib.contextmanager
def run_output(
    path: str | Path, *, overwrite: bool = False, resume: bool = False
) -> Iterator[Path]:
    """The output directory of a run whose input is checked (:func:`prepare_out_dir`):

    * created, and emptied first when ``overwrite`` replaces an earlier nas run (so no file of
      that run is mixed with the new one);
    * removed again if the run then stops on a :class:`NasError` (say training diverged, or a
      corrupt image deep in a dataset) and the directory was new or empty: a refused run
      leaves nothing half-written behind.

    With ``resume`` the directory is kept as it is, and kept on errors. Interruptions and crashes
    never remove anything: their checkpoints serve ``--resume``.
    """
    p = Path(path)
    if not resume and p.is_dir() and any(p.iterdir()):
        if not (overwrite and written_by_nas(p)):  # prepare_out_dir refused this already
            raise ConfigError(f"output directory {p} is not empty (pass --overwrite to replace it)")
        for child in p.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    fresh = not p.exists() or not any(p.iterdir())
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {p}: {exc.strerror}") from None
    try:
        yield p
    except NasError:
        if fresh:
            shutil.rmtree(p, ignore_errors=True)
        raise
