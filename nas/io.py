"""Small, safe file helpers: JSON/YAML/CSV and state_dict files (run directories:
:mod:`nas.rundir`).

Every file the toolkit writes goes through :func:`atomic_write_bytes` (write to a temporary file in
the same directory, then ``os.replace``), so an interrupted run never leaves a half-written file;
the atomic writes and the safe :func:`torch_load` live in ``search_spaces.files`` (the bottom
layer) and are re-exported here.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from nas.errors import ConfigError, WeightsError
from search_spaces.files import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    is_writer,
    torch_load,
)

__all__ = [
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_writer",
    "json_safe",
    "load_state_dict_file",
    "load_weights",
    "read_csv",
    "read_json",
    "torch_load",
    "write_json",
    "write_yaml",
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


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state)`` (strict), keeping the model's own module versions where
    ``state`` carries none (a plain dict: some torchvision modules, MNASNet's, refuse a state
    without them)."""
    own = model.state_dict()
    if getattr(state, "_metadata", None) is None and set(own) == set(state):
        own.update(state)
        state = own
    model.load_state_dict(state)
