"""The width spec (``arch.json``): the one description of a network's widths.

A spec names the space, the task the network is built for (classes, image channels, input size)
and the width of every unit. It is validated against its space on construction from a file, and
it is all that is needed to rebuild a pruned network (with ``nas.load_model``) or to count its
compute::

    {
      "format": "channel-nas/arch", "version": 1,
      "space": "resnet56", "num_classes": 10, "in_channels": 3, "input_size": [32, 32],
      "widths": {"layer1.0.conv1": 9, "layer1.1.conv1": 16, ...}
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_spaces.errors import NasError, SpecError
from search_spaces.files import atomic_write_text
from search_spaces.registry import create

if TYPE_CHECKING:
    from search_spaces.space import SearchSpace

FORMAT = "channel-nas/arch"
VERSION = 1


@dataclass(frozen=True)
class WidthSpec:
    """Widths of every unit of a space, for a task. Immutable; compare with ``==``."""

    space: str
    widths: Mapping[str, int] = field(hash=False)
    num_classes: int
    in_channels: int
    input_size: tuple[int, int]

    def __post_init__(self) -> None:
        self.validate()  # a spec that exists is valid, however it was made

    # -- the space and its numbers ----------------------------------------------------------------
    def get_space(self) -> SearchSpace:
        return create(
            self.space,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            input_size=self.input_size,
        )

    def validate(self) -> WidthSpec:
        """Check the spec against its space; raises :class:`SpecError` with one line."""
        if not isinstance(self.widths, Mapping):
            raise SpecError("'widths' must map unit names to integers")
        try:
            self.get_space().check_widths(self.widths)
        except NasError as exc:
            raise SpecError(str(exc)) from None
        return self

    def macs(self) -> int:
        """Exact conv + linear MACs of one input (one multiply-add = 1)."""
        return self.get_space().macs(self.widths)

    def params(self) -> int:
        return self.get_space().params(self.widths)

    def macs_ratio(self) -> float:
        """MACs relative to the full-width network of the same space and task."""
        space = self.get_space()
        return space.macs(self.widths) / space.macs()

    def stage_width_ratios(self) -> dict[str, float]:
        """Where the channels went: per stage (``stem``, ``layer1``, ...), the mean over its units
        of width / full width, in network order (informational in ``arch.json``)."""
        space = self.get_space()
        groups: dict[str, list[float]] = {}
        for u in space.units:
            stage = u.name.split(".")[0] if u.name.startswith("layer") else "stem"
            groups.setdefault(stage, []).append(self.widths[u.name] / u.max_width)
        return {stage: sum(r) / len(r) for stage, r in groups.items()}

    # -- serialisation ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "space": self.space,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size),
            "widths": dict(self.widths),
            "stage_width_ratios": {k: round(v, 4) for k, v in self.stage_width_ratios().items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "width spec") -> WidthSpec:
        """Parse and validate; every problem raises :class:`SpecError` naming ``source``."""
        try:
            return _parse(cls, data)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "width spec") -> WidthSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SpecError(f"{source}: must hold a JSON object")
        return cls.from_dict(data, source=source)

    def save(self, path: str | Path) -> None:
        """Write ``arch.json`` atomically (temporary file + rename)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> WidthSpec:
        p = Path(path)
        if not p.is_file():
            raise SpecError(f"width spec not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"cannot read width spec {p}: {exc}") from None
        return cls.from_json(text, source=str(p))


def _parse(cls: type[WidthSpec], data: Mapping[str, Any]) -> WidthSpec:
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
    try:
        create(
            data["space"],
            num_classes=data["num_classes"],
            in_channels=data["in_channels"],
            input_size=(size[0], size[1]),
        )
    except NasError as exc:
        raise SpecError(str(exc)) from None
    return cls(
        data["space"],
        dict(widths),
        int(data["num_classes"]),
        int(data["in_channels"]),
        (int(size[0]), int(size[1])),
    )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
