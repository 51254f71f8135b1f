"""The layer table's rows and the helpers that build it: units, layers, resizing, initialising.

:class:`Unit` is a group of channels pruned as one; :class:`Layer` is one conv, BN or linear layer
of the full network with the units that size it. The helpers below turn a traced full-width
network into rows of the table (:class:`search_spaces.SearchSpace` uses them) and build real
modules at given widths. Nothing here knows a space, a width spec or a name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "UNIT_KINDS",
    "Layer",
    "Term",
    "Unit",
    "init_weights",
    "resized",
    "round_width",
    "term",
    "trace_layers",
]

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
Term = tuple[int, "str | None", "str | None", int, int]


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
    hooks = [
        module.register_forward_hook(_record_pixels(pixels, name))
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():  # eval mode: a batch of one must pass BN at 1x1 resolutions
        model.eval()(torch.empty(1, in_channels, *input_size, device="meta"))
    for h in hooks:
        h.remove()
    table = [
        _layer_from_module(name, module, units, pixels)
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))
    ]
    order = {name: i for i, name in enumerate(pixels)}  # forward order of convs/linears
    return tuple(sorted(table, key=lambda la: order.get(_owner(la.name, order), len(order))))


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


def resized(module: nn.Module, c_in: int, c_out: int) -> nn.Module:
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
