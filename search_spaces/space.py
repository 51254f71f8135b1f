"""The search-space abstraction: prunable units, the layer table, building, exact compute.

A search space is a full-width network plus a description of which channel counts may shrink.
Channels that must shrink together form one *unit*:

* a block-internal unit is the output of one conv inside a residual block (and its BN);
* a stage unit is a residual stream: every conv/BN that writes into the stream (the stem where it
  feeds the stream directly, the projection shortcut, the last conv of every block) is coupled,
  because identity shortcuts add their channels together.

The *layer table* lists every conv, BN and linear layer with the unit that sets its input and its
output channels (``None`` = fixed: image channels, classes, or a stream the shortcuts freeze), its
kernel area and its output resolution. Everything else follows from it with one formula: the
MACs and parameter counts of any width assignment (:meth:`SearchSpace.macs`), the expected MACs
of a relaxed one (:meth:`SearchSpace.expected_macs`), building a model at given widths, and
slicing a trained full model down to them (``nas.extract``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from search_spaces.errors import SpecError

if TYPE_CHECKING:
    from search_spaces.spec import WidthSpec

UNIT_KINDS = ("stem", "stage", "block")


@dataclass(frozen=True)
class Unit:
    """A group of channels that is pruned as one: the searchable width of the network."""

    name: str
    max_width: int
    kind: str  # "stage" (coupled residual stream), "block" (block-internal conv), "stem"


@dataclass(frozen=True)
class Layer:
    """One conv / BN / linear layer of the full network and the units that size it."""

    name: str  # module path in the model, e.g. "layer1.0.conv1"
    kind: str  # "conv", "bn" or "linear"
    in_unit: str | None  # unit that sets the input channels (None = fixed)
    out_unit: str | None  # unit that sets the output channels (None = fixed)
    in_channels: int  # at full width
    out_channels: int  # at full width
    kernel_area: int  # kh * kw (1 for linear and BN)
    out_pixels: int  # H_out * W_out (1 for linear)
    bias: bool

    def width_in(self, widths: Mapping[str, int]) -> int:
        return widths[self.in_unit] if self.in_unit is not None else self.in_channels

    def width_out(self, widths: Mapping[str, int]) -> int:
        return widths[self.out_unit] if self.out_unit is not None else self.out_channels


# (coefficient, in_unit, out_unit, fixed in, fixed out): one product term of the compute formula.
_Term = tuple[int, "str | None", "str | None", int, int]


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

    # -- derived structure -----------------------------------------------------------------------
    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        """The layer table, in forward order, with output resolutions traced on the meta device."""
        with torch.device("meta"):
            model = self._skeleton()
        units = self._layer_units(model)
        pixels: dict[str, int] = {}
        hooks = [
            module.register_forward_hook(_record_pixels(pixels, name))
            for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.Linear))
        ]
        with torch.no_grad():  # eval mode: a batch of one must pass BN at 1x1 resolutions
            model.eval()(torch.empty(1, self.in_channels, *self.input_size, device="meta"))
        for h in hooks:
            h.remove()
        table = [
            _layer_from_module(name, module, units, pixels)
            for name, module in model.named_modules()
            if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
        ]
        order = {name: i for i, name in enumerate(pixels)}  # forward order of convs/linears
        return tuple(sorted(table, key=lambda la: order.get(_owner(la.name, order), len(order))))

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
    def mac_terms(self) -> tuple[_Term, ...]:
        """The MAC formula as product terms ``(coefficient, in unit, out unit, fixed in, fixed
        out)``: a layer's MACs are ``coefficient * c_in * c_out`` (a unit's width, or the fixed
        channel count where the unit is None)."""
        return tuple(
            (
                la.kernel_area * la.out_pixels,
                la.in_unit,
                la.out_unit,
                la.in_channels,
                la.out_channels,
            )
            for la in self.layers
            if la.kind in ("conv", "linear")
        )

    @cached_property
    def _param_terms(self) -> tuple[tuple[int, _Term], ...]:
        """(kind code, term): conv/linear weights k*cin*cout, plus biases and BN affine pairs."""
        terms: list[tuple[int, _Term]] = []
        for la in self.layers:
            if la.kind == "bn":
                terms.append((1, (2, None, la.out_unit, 1, la.out_channels)))
                continue
            terms.append(
                (0, (la.kernel_area, la.in_unit, la.out_unit, la.in_channels, la.out_channels))
            )
            if la.bias:
                terms.append((1, (1, None, la.out_unit, 1, la.out_channels)))
        return tuple(terms)

    # -- widths -----------------------------------------------------------------------------------
    def full_widths(self) -> dict[str, int]:
        return dict(self.max_widths)

    def uniform_widths(self, ratio: float, multiple: int = 1) -> dict[str, int]:
        """Every unit at ``ratio`` of its maximum (:func:`round_width`: rounded to a multiple of
        ``multiple``, at least one multiple, at most the maximum)."""
        return {u: round_width(m * ratio, m, multiple) for u, m in self.max_widths.items()}

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
            out[unit] = w
        return out

    # -- compute ----------------------------------------------------------------------------------
    def macs(self, widths: Mapping[str, int] | None = None) -> int:
        """Exact conv + linear multiply-accumulates of one forward pass of one input."""
        w = self.max_widths if widths is None else widths
        return int(sum(_term(t, w) for t in self.mac_terms))

    def expected_macs(self, widths: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The same formula with (expected, real-valued) widths: differentiable in them.

        With a one-hot distribution the expected widths are integers and this equals
        :meth:`macs` exactly.
        """
        total = torch.zeros(())
        for t in self.mac_terms:
            total = total + _term(t, widths)
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
            total = total + _term(t, columns)
        return total

    def params(self, widths: Mapping[str, int] | None = None) -> int:
        """Exact number of trainable parameters (conv/linear weights and biases, BN affine)."""
        w = self.max_widths if widths is None else widths
        return int(sum(_term(t, w) for _, t in self._param_terms))

    # -- building ---------------------------------------------------------------------------------
    def build(self, widths: Mapping[str, int] | None = None) -> nn.Module:
        """A freshly initialised network at ``widths`` (full width if None), really that size."""
        w = self.full_widths() if widths is None else self.check_widths(widths)
        with torch.device("meta"):
            model = self._skeleton()
        for layer in self.layers:
            old = model.get_submodule(layer.name)
            model.set_submodule(layer.name, _resized(old, layer.width_in(w), layer.width_out(w)))
        leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if leftover:
            raise AssertionError(f"{self.name}: tensors not covered by the layer table: {leftover}")
        _init_weights(model)
        return model

    def spec(self, widths: Mapping[str, int] | None = None) -> WidthSpec:
        """A validated :class:`WidthSpec` for this space (full width if None)."""
        from search_spaces.spec import WidthSpec

        w = self.full_widths() if widths is None else self.check_widths(widths)
        return WidthSpec(self.name, w, self.num_classes, self.in_channels, self.input_size)

    def __repr__(self) -> str:
        h, w = self.input_size
        return (
            f"{type(self).__name__}({self.name!r}, num_classes={self.num_classes}, "
            f"in_channels={self.in_channels}, input_size={h}x{w}, units={len(self.units)})"
        )


def _term(t: _Term, widths: Mapping[str, Any]) -> Any:
    coef, u_in, u_out, c_in, c_out = t
    a = widths[u_in] if u_in is not None else c_in
    b = widths[u_out] if u_out is not None else c_out
    return coef * a * b


def _record_pixels(store: dict[str, int], name: str):  # type: ignore[no-untyped-def]
    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        store[name] = int(output.shape[-2] * output.shape[-1]) if output.dim() == 4 else 1

    return hook


def _owner(bn_name: str, order: Mapping[str, int]) -> str:
    """Order a BN right after the conv it normalises (``bn2`` after ``conv2``, ``x.1`` after
    ``x.0``)."""
    if bn_name in order:
        return bn_name
    parent, _, leaf = bn_name.rpartition(".")
    if leaf.startswith("bn"):
        return f"{parent}.conv{leaf[2:]}" if parent else f"conv{leaf[2:]}"
    if leaf.isdigit():
        return f"{parent}.{int(leaf) - 1}"
    return bn_name


def _layer_from_module(
    name: str,
    module: nn.Module,
    units: Mapping[str, tuple[str | None, str | None]],
    pixels: Mapping[str, int],
) -> Layer:
    if name not in units:
        raise AssertionError(f"module {name} is missing from the space's unit table")
    u_in, u_out = units[name]
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            raise AssertionError("grouped convolutions are not supported")
        kh, kw = module.kernel_size
        return Layer(
            name,
            "conv",
            u_in,
            u_out,
            module.in_channels,
            module.out_channels,
            kh * kw,
            pixels[name],
            module.bias is not None,
        )
    if isinstance(module, nn.BatchNorm2d):
        return Layer(
            name, "bn", u_out, u_out, module.num_features, module.num_features, 1, 1, False
        )
    assert isinstance(module, nn.Linear)
    return Layer(
        name,
        "linear",
        u_in,
        u_out,
        module.in_features,
        module.out_features,
        1,
        1,
        module.bias is not None,
    )


def _resized(module: nn.Module, c_in: int, c_out: int) -> nn.Module:
    """A new (real, CPU) module like ``module`` with the given channel counts."""
    if isinstance(module, nn.Conv2d):
        return nn.Conv2d(
            c_in,
            c_out,
            module.kernel_size,  # type: ignore[arg-type]
            module.stride,  # type: ignore[arg-type]
            module.padding,  # type: ignore[arg-type]
            module.dilation,  # type: ignore[arg-type]
            bias=module.bias is not None,
        )
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(
            c_out,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
    if isinstance(module, nn.Linear):
        return nn.Linear(c_in, c_out, bias=module.bias is not None)
    raise TypeError(f"cannot resize {type(module).__name__}")


def _init_weights(model: nn.Module) -> None:
    """torchvision's ResNet initialisation (Kaiming-normal convs, unit BN, default linear)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def round_width(width: float, max_width: int, multiple: int = 1) -> int:
    """``width`` rounded to the nearest multiple of ``multiple`` (at least one multiple), capped
    at ``max_width``. Widths in multiples of 8 often run faster than odd ones on real hardware."""
    if multiple < 1:
        raise ValueError(f"multiple must be at least 1, got {multiple}")
    if width >= max_width:  # the full width stays reachable even when it is not a multiple
        return max_width
    return min(max_width, max(multiple, multiple * round(width / multiple)))
