"""The search-space abstraction, its width specs, and the registry of spaces by name.

A search space is a full-width network plus a description of which channel counts may shrink.
Channels that must shrink together form one *unit*:

* a block-internal unit is the output of one conv inside a residual block (and its BN);
* a stage unit is a residual stream: every conv/BN that writes into the stream (the stem where it
  feeds the stream directly, the projection shortcut, the last conv of every block) is coupled,
  because identity shortcuts add their channels together.

The *layer table* (rows: :mod:`search_spaces.layers`) lists every conv, BN and linear layer with
the unit that sets its input and its output channels (``None`` = fixed: image channels, classes,
or a stream the shortcuts freeze), its kernel area and its output resolution. Everything else
follows from it with one formula: the MACs and parameter counts of any width assignment
(:meth:`SearchSpace.macs`), the expected MACs of a relaxed one (:meth:`SearchSpace.expected_macs`),
building a model at given widths, and slicing a trained full model down to them (``nas.extract``).

Three things here need each other, so they share this module: a space makes width specs
(:meth:`SearchSpace.spec`), a :class:`WidthSpec` finds its space by name (:func:`create`), and
the registry of spaces (:data:`SPACES`) makes spaces. Below it: the generic registry, the
table's rows and the ``arch.json`` format; above it, the spaces (``cifar_resnet``,
``torchvision_resnet``, ``traced``: names with a colon, through :func:`add_resolver`).
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from search_spaces.errors import NasError, SpaceError, SpecError
from search_spaces.files import atomic_write_text, factory_digest
from search_spaces.layers import (
    FrozenGroup,
    Layer,
    Term,
    Unit,
    init_weights,
    resized_layer,
    round_width,
    term,
    trace_layers,
)
from search_spaces.registry import Registry
from search_spaces.spec import FORMAT, VERSION, json_object, read_spec_file, spec_fields

__all__ = [
    "SPACES",
    "SPACE_NAMES",
    "Layer",
    "SearchSpace",
    "SpaceEntry",
    "Unit",
    "WidthSpec",
    "add_resolver",
    "create",
    "get_entry",
    "list_spaces",
    "register",
    "round_width",
]


class SearchSpace(abc.ABC):
    """A full-width network whose unit widths can be chosen.

    Subclasses provide the full-width skeleton and, for every conv/BN/linear module, the units
    that size it; the rest (units, layer table, compute, building) is shared.
    """

    family: str = ""

    def __init__(
        self, name: str, *, num_classes: int, in_channels: int, input_size: tuple[int, int]
    ) -> None:
        self.name = name
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.input_size = (int(input_size[0]), int(input_size[1]))

    # -- provided by subclasses ----------------------------------------------------------------
    @abc.abstractmethod
    def _skeleton(self) -> nn.Module:
        """The full-width network (called under ``torch.device("meta")``)."""

    @abc.abstractmethod
    def _layer_units(self, model: nn.Module) -> dict[str, tuple[str | None, str | None]]:
        """For every conv/BN/linear module path: (input unit, output unit)."""

    def _unit_kind(self, unit: str) -> str:
        return "stage" if "." not in unit else "block"

    def unit_stages(self) -> dict[str, str]:
        """The stage of every unit, for reports of where the channels went: ``layerN`` for a
        ResNet's units, ``stem`` for the rest."""
        return {
            u.name: u.name.split(".")[0] if u.name.startswith("layer") else "stem"
            for u in self.units
        }

    @property
    def frozen(self) -> tuple[FrozenGroup, ...]:
        """Channels kept at full width because no rule follows them (a traced space lists them
        with the reason; a hand-written space fixes its channels by design: none)."""
        return ()

    @property
    def input_masks(self) -> tuple[str, ...]:
        """Layers whose input channels must be masked for a switched-off channel to read as
        zero there (it reaches them without passing a masked BatchNorm): none in a ResNet."""
        return ()

    # -- derived structure -----------------------------------------------------------------------
    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        """The layer table, in forward order, with output resolutions traced on the meta device."""
        with torch.device("meta"):
            model = self._skeleton()
        return trace_layers(model, self._layer_units(model), self.in_channels, self.input_size)

    @cached_property
    def units(self) -> tuple[Unit, ...]:
        """The searchable units in forward order (first layer that writes each)."""
        found: dict[str, int] = {}
        for layer in self.layers:
            if layer.out_unit is None:
                continue
            seen = found.setdefault(layer.out_unit, layer.out_channels)
            if seen != layer.out_channels:
                raise AssertionError(f"unit {layer.out_unit} has inconsistent widths")
        return tuple(Unit(u, w, self._unit_kind(u)) for u, w in found.items())

    @cached_property
    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the full-width network's state_dict."""
        with torch.device("meta"):
            return {k: tuple(v.shape) for k, v in self._skeleton().state_dict().items()}

    @cached_property
    def max_widths(self) -> dict[str, int]:
        return {u.name: u.max_width for u in self.units}

    @cached_property
    def granularity(self) -> dict[str, int]:
        """Per unit, the multiple its width must be (1 unless a grouped convolution reads it)."""
        return {u.name: u.granularity for u in self.units}

    @cached_property
    def mac_terms(self) -> tuple[Term, ...]:
        """The MAC formula as product terms ``(coefficient, in unit, out unit, fixed in, fixed
        out)``: a term's MACs are ``coefficient * c_in * c_out`` (a unit's width, or the fixed
        channel count where the unit is None); a layer gives one term per input segment."""
        terms = [t for la in self.layers for t in la.mac_terms()]
        return (*terms, *self._constant_terms()[0])

    @cached_property
    def _param_terms(self) -> tuple[Term, ...]:
        """Conv/linear weights and biases, BN affine pairs, and parameters outside the table."""
        terms = [t for la in self.layers for t in la.param_terms()]
        return (*terms, *self._constant_terms()[1])

    def _constant_terms(self) -> tuple[tuple[Term, ...], tuple[Term, ...]]:
        """MACs and parameters no width changes (operations and parameters outside the table's
        layers): none in a hand-written space."""
        return (), ()

    # -- widths -----------------------------------------------------------------------------------
    def full_widths(self) -> dict[str, int]:
        return dict(self.max_widths)

    def uniform_widths(self, ratio: float, multiple: int = 1) -> dict[str, int]:
        """Every unit at ``ratio`` of its maximum (:func:`round_width`: rounded to a multiple of
        ``multiple``, at least one multiple, at most the maximum)."""
        return {
            u.name: round_width(u.max_width * ratio, u.max_width, math.lcm(multiple, u.granularity))
            for u in self.units
        }

    def uniform_widths_for_macs(self, macs_ratio: float, multiple: int = 1) -> dict[str, int]:
        """Uniform widths (one ratio for every unit, rounded to ``multiple``) whose MACs come
        closest to ``macs_ratio`` of the full network: the "same MACs, uniform width" baseline."""
        if not 0 < macs_ratio <= 1:
            raise SpecError(f"MAC ratio must be in (0, 1], got {macs_ratio}")
        full = self.macs()
        lo, hi = 0.0, 1.0
        for _ in range(40):  # MACs grow monotonically with the common ratio
            mid = (lo + hi) / 2
            below = self.macs(self.uniform_widths(mid, multiple)) < macs_ratio * full
            lo, hi = (mid, hi) if below else (lo, mid)
        candidates = [self.uniform_widths(r, multiple) for r in (lo, hi)]
        return min(candidates, key=lambda w: abs(self.macs(w) - macs_ratio * full))

    def check_widths(self, widths: Mapping[str, int]) -> dict[str, int]:
        """Validate a complete width assignment; raises :class:`SpecError` with one line."""
        unknown = sorted(set(widths) - set(self.max_widths))
        if unknown:
            raise SpecError(f"unknown unit(s) for space {self.name}: {', '.join(unknown[:5])}")
        missing = [u for u in self.max_widths if u not in widths]
        if missing:
            raise SpecError(
                f"missing width for unit(s) of space {self.name}: {', '.join(missing[:5])}"
            )
        out: dict[str, int] = {}
        for unit, maximum in self.max_widths.items():
            w = widths[unit]
            if isinstance(w, bool) or not isinstance(w, int):
                raise SpecError(f"width of unit {unit} must be an integer, got {w!r}")
            if not 1 <= w <= maximum:
                raise SpecError(f"width of unit {unit} is {w}; it must be between 1 and {maximum}")
            if w % self.granularity[unit]:
                raise SpecError(
                    f"width of unit {unit} is {w}; it must be a multiple of "
                    f"{self.granularity[unit]} (whole groups of its grouped convolution)"
                )
            out[unit] = w
        return out

    # -- compute ----------------------------------------------------------------------------------
    def macs(self, widths: Mapping[str, int] | None = None) -> int:
        """Exact conv + linear multiply-accumulates of one forward pass of one input."""
        w = self.max_widths if widths is None else widths
        return int(sum(term(t, w) for t in self.mac_terms))

    def expected_macs(self, widths: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The same formula with (expected, real-valued) widths: differentiable in them.

        With a one-hot distribution the expected widths are integers and this equals
        :meth:`macs` exactly.
        """
        total = torch.zeros(())
        for t in self.mac_terms:
            total = total + term(t, widths)
        return total

    def batched_macs(self, widths: torch.Tensor) -> torch.Tensor:
        """``(B,)`` MACs of a batch of width assignments ``(B, U)`` (columns in unit order) by the
        same formula: int64 and exact for integer widths, float64 for real-valued ones."""
        if widths.dim() != 2 or widths.shape[1] != len(self.units):
            raise ValueError(
                f"widths must have shape (B, {len(self.units)}) for space {self.name}, "
                f"got {tuple(widths.shape)}"
            )
        widths = widths.to(torch.float64 if widths.is_floating_point() else torch.int64)
        columns = {u.name: widths[:, i] for i, u in enumerate(self.units)}
        total = torch.zeros(widths.shape[0], dtype=widths.dtype, device=widths.device)
        for t in self.mac_terms:
            total = total + term(t, columns)
        return total

    def params(self, widths: Mapping[str, int] | None = None) -> int:
        """Exact number of trainable parameters (conv/linear weights and biases, BN affine)."""
        w = self.max_widths if widths is None else widths
        return int(sum(term(t, w) for t in self._param_terms))

    # -- building ---------------------------------------------------------------------------------
    def build(self, widths: Mapping[str, int] | None = None) -> nn.Module:
        """A freshly initialised network at ``widths`` (full width if None), really that size."""
        w = self.full_widths() if widths is None else self.check_widths(widths)
        with torch.device("meta"):
            model = self._skeleton()
        for layer in self.layers:
            model.set_submodule(
                layer.name, resized_layer(layer, model.get_submodule(layer.name), w)
            )
        leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if leftover:
            raise AssertionError(f"{self.name}: tensors not covered by the layer table: {leftover}")
        init_weights(model)
        return model

    def spec(self, widths: Mapping[str, int] | None = None) -> WidthSpec:
        """A validated :class:`WidthSpec` for this space (full width if None)."""
        w = self.full_widths() if widths is None else self.check_widths(widths)
        return WidthSpec(self.name, w, self.num_classes, self.in_channels, self.input_size)

    def __repr__(self) -> str:
        h, w = self.input_size
        return (
            f"{type(self).__name__}({self.name!r}, num_classes={self.num_classes}, "
            f"in_channels={self.in_channels}, input_size={h}x{w}, units={len(self.units)})"
        )


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
        stages = space.unit_stages()
        groups: dict[str, list[float]] = {}
        for u in space.units:
            groups.setdefault(stages[u.name], []).append(self.widths[u.name] / u.max_width)
        return {stage: sum(r) / len(r) for stage, r in groups.items()}

    # -- serialisation (the format: search_spaces.spec) --------------------------------------------
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
            **({"space_sha256": digest} if (digest := factory_digest(self.space)) else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "width spec") -> WidthSpec:
        """Parse and validate; every problem raises :class:`SpecError` naming ``source``."""
        try:
            name, widths, num_classes, in_channels, size = spec_fields(data)
            try:  # the space and the task first: a wrong name is reported as such
                create(name, num_classes=num_classes, in_channels=in_channels, input_size=size)
            except NasError as exc:
                raise SpecError(str(exc)) from None
            return cls(name, widths, num_classes, in_channels, size)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "width spec") -> WidthSpec:
        return cls.from_dict(json_object(text, source=source), source=source)

    def save(self, path: str | Path) -> None:
        """Write ``arch.json`` atomically (temporary file + rename)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> WidthSpec:
        p = Path(path)
        return cls.from_json(read_spec_file(p), source=str(p))


# -- the registry of spaces ---------------------------------------------------------------------
SpaceFactory = Callable[[str, int, int, tuple[int, int]], SearchSpace]


@dataclass(frozen=True)
class SpaceEntry:
    name: str
    factory: SpaceFactory
    default_num_classes: int  # 0: none (a factory that decides its own classes)
    default_input_size: tuple[int, int] | None  # None: the data decides (a user's network)
    description: str


SPACES: Registry[SpaceEntry] = Registry("search space", error=SpaceError)


def register(
    name: str,
    factory: SpaceFactory,
    *,
    default_num_classes: int,
    default_input_size: tuple[int, int],
    description: str,
) -> None:
    """Add a space. A name that is already registered is refused."""
    SPACES.register(
        name,
        SpaceEntry(name, factory, default_num_classes, default_input_size, description),
        description=description,
    )


def list_spaces() -> list[str]:
    """Names of all registered spaces, in registration order."""
    return SPACES.names()


# functions that resolve names outside the registry ("torchvision:X", "file.py:factory", any
# CIFAR ResNet depth); each returns None for names that are not its own
_RESOLVERS: list[Callable[[str], SpaceEntry | None]] = []


def add_resolver(resolve: Callable[[str], SpaceEntry | None]) -> None:
    """Let ``resolve`` answer names the registry does not hold."""
    _RESOLVERS.append(resolve)


class SpaceNames:
    """The names a space option takes: the registry's and those a resolver answers."""

    def names(self) -> list[str]:
        return [*SPACES.names(), "torchvision:NAME", "module:factory", "file.py:factory"]

    def accepts(self, name: str) -> bool:
        resolved = ":" not in name and any(r(name) is not None for r in _RESOLVERS)
        return name in SPACES or (":" in name and bool(_RESOLVERS)) or resolved


SPACE_NAMES = SpaceNames()


def get_entry(name: str) -> SpaceEntry:
    """The registry entry of ``name`` (or of a traced name such as ``torchvision:mobilenet_v2``);
    an unknown name raises :class:`SpaceError`."""
    if isinstance(name, str) and name not in SPACES:
        for resolve in _RESOLVERS:
            entry = resolve(name)
            if entry is not None:
                return entry
    return SPACES.get(name)


def create(
    name: str,
    *,
    num_classes: int | None = None,
    in_channels: int = 3,
    input_size: tuple[int, int] | None = None,
) -> SearchSpace:
    """The search space ``name`` for a task (classes, image channels, input size H x W).

    Spaces are immutable and cached: asking twice for the same task returns the same object.
    """
    entry = get_entry(name)
    classes = entry.default_num_classes if num_classes is None else int(num_classes)
    if input_size is None and entry.default_input_size is None:
        raise SpecError(f"space {entry.name} has no default input size: give the input size")
    size = (
        entry.default_input_size if input_size is None else (int(input_size[0]), int(input_size[1]))
    )
    assert size is not None
    if num_classes is None and classes < 1:
        raise SpecError(f"space {entry.name} has no default number of classes: give num_classes")
    if classes < 1:
        raise SpecError(f"num_classes must be at least 1, got {classes}")
    if in_channels < 1:
        raise SpecError(f"in_channels must be at least 1, got {in_channels}")
    if min(size) < 1:
        raise SpecError(f"input size must be positive, got {size[0]}x{size[1]}")
    return _create(entry.name, classes, int(in_channels), size)


@lru_cache(maxsize=64)
def _create(name: str, num_classes: int, in_channels: int, size: tuple[int, int]) -> SearchSpace:
    space = get_entry(name).factory(name, num_classes, in_channels, size)
    try:
        space.layers  # trace once, so errors (e.g. an input too small) surface here  # noqa: B018
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise SpecError(f"space {name} cannot run on {size[0]}x{size[1]} inputs: {first}") from None
    return space
