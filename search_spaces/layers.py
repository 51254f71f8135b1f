"""The layer table's rows and the helpers that build it: units, layers, resizing, initialising.

:class:`Unit` is a group of channels pruned as one; :class:`Layer` is one conv, BN or linear layer
of the full network with the units that size it. The helpers below turn a traced full-width
network into rows of the table (:class:`search_spaces.SearchSpace` uses them) and build real
modules at given widths. Nothing here knows a space, a width spec or a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

__all__ = [
    "UNIT_KINDS",
    "FrozenGroup",
    "Layer",
    "Segment",
    "Term",
    "Unit",
    "init_weights",
    "input_index",
    "input_mask",
    "resized",
    "resized_layer",
    "resolution_stages",
    "round_width",
    "scale_channels",
    "sliced_layer",
    "term",
    "trace_layers",
]

UNIT_KINDS = ("stem", "stage", "block")


@dataclass(frozen=True)
class Unit:
    """A group of channels that is pruned as one: the searchable width of the network.

    ``granularity``: its width is a multiple of this (the channels per group of a grouped
    convolution that reads and writes it: whole groups are kept or dropped)."""

    name: str
    max_width: int
    kind: str  # "stage" (coupled residual stream), "block" (block-internal conv), "stem"
    granularity: int = 1


@dataclass(frozen=True)
class FrozenGroup:
    """Channels kept at full width (no rule can follow them), the layers that write them, and
    why (the first reason met, naming the operation and where it is)."""

    channels: int
    writers: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Segment:
    """A run of a layer's input channels sized by one unit (None: fixed at ``channels``).

    ``repeat``: each channel spans that many consecutive input features (a flatten of ``H x W``
    positions before a linear layer; 1 otherwise)."""

    unit: str | None
    channels: int  # at full width
    repeat: int = 1


@dataclass(frozen=True)
class Layer:
    """One conv / BN / linear layer of the full network and the units that size it.

    ``inputs`` are the segments its input channels are made of, in order (one for a ResNet; a
    concatenation gives several). A BN's inputs are its channels; its ``out_unit`` is the unit
    when there is one segment. A grouped convolution (``groups > 1``) reads and writes the same
    unit, in whole groups. For a BN, ``bias`` says whether it has affine parameters."""

    name: str  # module path in the model, e.g. "layer1.0.conv1"
    kind: str  # "conv", "bn" or "linear"
    inputs: tuple[Segment, ...]
    out_unit: str | None  # unit that sets the output channels (None = fixed)
    in_channels: int  # input channels (features for a linear layer) at full width
    out_channels: int  # at full width
    kernel_area: int  # kh * kw (1 for linear and BN)
    out_pixels: int  # H_out * W_out (1 for a linear layer on (N, F) inputs)
    bias: bool
    groups: int = 1
    reads_input: bool = False  # reads the network's input (its channels are the data's)
    writes_output: bool = False  # writes the network's output (its channels are the classes)

    @property
    def in_unit(self) -> str | None:
        """The one unit that sizes the input; a layer reading several segments raises."""
        if len(self.inputs) != 1 or self.inputs[0].repeat != 1:
            raise ValueError(f"layer {self.name} reads {len(self.inputs)} segments")
        return self.inputs[0].unit

    def width_in(self, widths: Mapping[str, int]) -> int:
        return sum(
            (widths[s.unit] if s.unit is not None else s.channels) * s.repeat for s in self.inputs
        )

    def width_out(self, widths: Mapping[str, int]) -> int:
        return widths[self.out_unit] if self.out_unit is not None else self.out_channels

    def unit_ranges(self) -> list[tuple[str, int, int]]:
        """``(unit, start, end)`` of every unit segment of the input channels (a BN over a
        concatenation: each unit's slice of its channels)."""
        out, offset = [], 0
        for s in self.inputs:
            if s.unit is not None:
                out.append((s.unit, offset, offset + s.channels))
            offset += s.channels * s.repeat
        return out

    def mac_terms(self) -> list[Term]:
        """This layer's multiply-accumulates as product terms (none for a BN)."""
        if self.kind == "bn":
            return []
        area = self.kernel_area * self.out_pixels
        if self.groups > 1:  # each output channel reads in_channels / groups inputs
            return [(area, None, self.out_unit, self.in_channels // self.groups, self.out_channels)]
        return [
            (area * s.repeat, s.unit, self.out_unit, s.channels, self.out_channels)
            for s in self.inputs
        ]

    def param_terms(self) -> list[Term]:
        """This layer's parameters as product terms: weights, biases, BN affine pairs."""
        if self.kind == "bn":
            return [(2, None, s.unit, 1, s.channels) for s in self.inputs] if self.bias else []
        weights: list[Term]
        if self.groups > 1:
            weights = [
                (
                    self.kernel_area,
                    None,
                    self.out_unit,
                    self.in_channels // self.groups,
                    self.out_channels,
                )
            ]
        else:
            weights = [
                (self.kernel_area * s.repeat, s.unit, self.out_unit, s.channels, self.out_channels)
                for s in self.inputs
            ]
        bias = [(1, None, self.out_unit, 1, self.out_channels)] if self.bias else []
        return [*weights, *bias]


# (coefficient, in_unit, out_unit, fixed in, fixed out): one product term of the compute formula.
Term = tuple[int, "str | None", "str | None", int, int]


def resolution_stages(layers: Iterable[Layer]) -> dict[int, int]:
    """Stage numbers of a network without named stages: each distinct output resolution of its
    convolutions (``out_pixels``), from the input down, numbered from 1."""
    levels = sorted({la.out_pixels for la in layers if la.kind == "conv"}, reverse=True)
    return {pixels: i + 1 for i, pixels in enumerate(levels)}


def term(t: Term, widths: Mapping[str, Any]) -> Any:
    coef, u_in, u_out, c_in, c_out = t
    a = widths[u_in] if u_in is not None else c_in
    b = widths[u_out] if u_out is not None else c_out
    return coef * a * b


def trace_layers(
    model: nn.Module,
    units: Mapping[str, tuple[str | None, str | None]],
    in_channels: int,
    input_size: tuple[int, int],
) -> tuple[Layer, ...]:
    """The layer table of ``model`` (a full-width network on the meta device) whose conv/BN/linear
    modules are sized by ``units``, in forward order, with output resolutions traced on one
    input of ``in_channels`` x ``input_size``."""
    pixels: dict[str, int] = {}
    ends: dict[str, tuple[bool, torch.Tensor]] = {}  # reads the input?, output
    x = torch.empty(1, in_channels, *input_size, device="meta")
    hooks = [
        module.register_forward_hook(_record_pixels(pixels, ends, name, x))
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():  # eval mode: a batch of one must pass BN at 1x1 resolutions
        y = model.eval()(x)
    for h in hooks:
        h.remove()
    table = [
        _layer_from_module(name, module, units, pixels)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    ]
    table = [
        replace(la, reads_input=ends[la.name][0], writes_output=ends[la.name][1] is y)
        if la.name in ends
        else la
        for la in table
    ]
    order = {name: i for i, name in enumerate(pixels)}  # forward order of convs/linears
    return tuple(sorted(table, key=lambda la: order.get(_owner(la.name, order), len(order))))


def _record_pixels(  # type: ignore[no-untyped-def]
    store: dict[str, int],
    ends: dict[str, tuple[bool, torch.Tensor]],
    name: str,
    x: torch.Tensor,
):
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        store[name] = int(output.shape[-2] * output.shape[-1]) if output.dim() == 4 else 1
        ends[name] = (inputs[0] is x, output)

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
            (Segment(u_in, module.in_channels),),
            u_out,
            module.in_channels,
            module.out_channels,
            kh * kw,
            pixels[name],
            module.bias is not None,
        )
    if isinstance(module, nn.BatchNorm2d):
        return Layer(
            name,
            "bn",
            (Segment(u_out, module.num_features),),
            u_out,
            module.num_features,
            module.num_features,
            1,
            1,
            module.affine,
        )
    assert isinstance(module, nn.Linear)
    return Layer(
        name,
        "linear",
        (Segment(u_in, module.in_features),),
        u_out,
        module.in_features,
        module.out_features,
        1,
        1,
        module.bias is not None,
    )


def resized(module: nn.Module, c_in: int, c_out: int, groups: int = 1) -> nn.Module:
    """A new (real, CPU) module like ``module`` with the given channel counts."""
    if isinstance(module, nn.Conv2d):
        return nn.Conv2d(
            c_in,
            c_out,
            module.kernel_size,  # type: ignore[arg-type]
            module.stride,  # type: ignore[arg-type]
            module.padding,  # type: ignore[arg-type]
            module.dilation,  # type: ignore[arg-type]
            groups,
            bias=module.bias is not None,
            padding_mode=module.padding_mode,
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


def resized_layer(layer: Layer, module: nn.Module, widths: Mapping[str, int]) -> nn.Module:
    """``module`` (the layer's full-width module) rebuilt at ``widths``: a BN at its channels, a
    grouped convolution with as many groups as whole groups are kept."""
    if layer.kind == "bn":
        c = layer.width_in(widths)
        return resized(module, c, c)
    c_in, c_out = layer.width_in(widths), layer.width_out(widths)
    groups = c_out // (layer.out_channels // layer.groups) if layer.groups > 1 else 1
    return resized(module, c_in, c_out, groups)


def input_index(layer: Layer, keep: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """The indices of ``layer``'s input channels (features of a linear layer) that ``keep``
    keeps, segment by segment; None when every segment is fixed (nothing to slice)."""
    if all(s.unit is None for s in layer.inputs):
        return None
    parts, offset = [], 0
    for s in layer.inputs:
        idx = keep[s.unit] if s.unit is not None else torch.arange(s.channels)
        if s.repeat > 1:  # a flattened channel spans `repeat` consecutive features
            idx = (idx[:, None] * s.repeat + torch.arange(s.repeat)[None, :]).flatten()
        parts.append(idx + offset)
        offset += s.channels * s.repeat
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def input_mask(layer: Layer, masks: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
    """The mask of ``layer``'s input channels (features): each segment's unit mask (``(C,)`` or
    per sample ``(N, C)``), ones where a segment is fixed or has no mask; None when no segment
    has one."""
    if not any(s.unit is not None and s.unit in masks for s in layer.inputs):
        return None
    if len(layer.inputs) == 1 and layer.inputs[0].repeat == 1:
        unit = layer.inputs[0].unit
        assert unit is not None
        return masks[unit]
    like = next(masks[s.unit] for s in layer.inputs if s.unit is not None and s.unit in masks)
    parts = []
    for s in layer.inputs:
        m = masks.get(s.unit) if s.unit is not None else None
        if m is None:
            m = like.new_ones((*like.shape[:-1], s.channels))
        parts.append(m.repeat_interleave(s.repeat, dim=-1) if s.repeat > 1 else m)
    return torch.cat(parts, dim=-1)


def scale_channels(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` (``(N, C, ...)``) with its channels scaled by ``mask`` (``(C,)`` or ``(N, C)``)."""
    lead = (1, -1) if mask.dim() == 1 else tuple(mask.shape)
    return x * mask.to(x.dtype).view(*lead, *([1] * (x.dim() - 2)))


def sliced_layer(
    layer: Layer, state: Mapping[str, torch.Tensor], keep: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The tensors of ``layer`` (in ``state``) cut to the channels ``keep`` keeps: a conv or
    linear layer's outputs (dim 0) and inputs (dim 1; a grouped convolution keeps whole groups,
    so its dim 1 stays), a BN's channels."""
    if layer.kind == "bn":
        out_idx, in_idx = input_index(layer, keep), None
    else:
        out_idx = keep[layer.out_unit] if layer.out_unit is not None else None
        in_idx = input_index(layer, keep) if layer.groups == 1 else None
    sliced = {}
    prefix = layer.name + "."
    for key, tensor in state.items():
        if not key.startswith(prefix) or "." in key[len(prefix) :]:
            continue
        t = tensor
        if t.dim() >= 1 and out_idx is not None:
            t = t.index_select(0, out_idx)
        if t.dim() >= 2 and in_idx is not None:
            t = t.index_select(1, in_idx)
        sliced[key] = t.clone()
    return sliced


def init_weights(model: nn.Module) -> None:
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
