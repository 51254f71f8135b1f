"""The width-spec file format (``arch.json``): the one description of a network's widths.

A spec names the space, the task the network is built for (classes, image channels, input size)
and the width of every unit. It is validated against its space on construction from a file, and
it is all that is needed to rebuild a pruned network (with ``nas.load_model``) or to count its
compute::

    {
      "format": "channel-nas/arch", "version": 1,
      "space": "resnet56", "num_classes": 10, "in_channels": 3, "input_size": [32, 32],
      "widths": {"layer1.0.conv1": 9, "layer1.1.conv1": 16, ...}
    }

This module reads the format: the file, its JSON, and the fields with their types. The class
:class:`search_spaces.WidthSpec` (in :mod:`search_spaces.space`, beside the spaces it is checked
against) uses it; nothing here knows a space.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search_spaces.errors import SpecError

__all__ = ["FORMAT", "VERSION", "SpecFields", "json_object", "read_spec_file", "spec_fields"]

FORMAT = "channel-nas/arch"
VERSION = 1

# space name, widths, classes, image channels, input size (H, W)
SpecFields = tuple[str, dict[str, Any], int, int, tuple[int, int]]


def read_spec_file(path: Path) -> str:
    """The text of the spec file ``path``; a missing or unreadable one raises :class:`SpecError`."""
    if not path.is_file():
        raise SpecError(f"width spec not found: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read width spec {path}: {exc}") from None


def json_object(text: str, *, source: str) -> dict[str, Any]:
    """The JSON object ``text`` holds; anything else raises :class:`SpecError` naming ``source``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source}: must hold a JSON object")
    return data


def spec_fields(data: Mapping[str, Any]) -> SpecFields:
    """The fields of a spec's dict, their presence and types checked (not yet against a space);
    raises :class:`SpecError` with one line."""
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        raise SpecError(f"not a channel-nas width spec (format {fmt!r})")
    version = data.get("version", VERSION)
    if version != VERSION:
        raise SpecError(f"unsupported width spec version {version!r} (this build reads {VERSION})")
    missing = [
        k for k in ("space", "widths", "num_classes", "in_channels", "input_size") if k not in data
    ]
    if missing:
        raise SpecError(f"missing field(s): {', '.join(missing)}")
    widths = data["widths"]
    if not isinstance(widths, dict):
        raise SpecError("'widths' must be an object mapping unit names to integers")
    size = data["input_size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_is_int(v) for v in size)):
        raise SpecError("'input_size' must be [height, width]")
    for key in ("num_classes", "in_channels"):
        if not _is_int(data[key]):
            raise SpecError(f"'{key}' must be an integer")
    if not isinstance(data["space"], str):
        raise SpecError("'space' must be a string")
    return (
        data["space"],
        dict(widths),
        int(data["num_classes"]),
        int(data["in_channels"]),
        (int(size[0]), int(size[1])),
    )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
