"""Slicing: a trained full-width network plus a width spec -> a really smaller network.

Every conv, BN and linear tensor is sliced to the kept channels of the units that size it, so the
standalone network computes exactly what the full network computes with the dropped channels
masked to zero (:func:`mask_channels`). Which channels are kept is set by a per-unit *channel
order* (most important first, :func:`nas.importance.channel_order`): a unit of width ``w`` keeps
the first ``w`` channels of its order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from nas.engine.batchnorm import DEFAULT_CALIBRATION_IMAGES, recalibrate_bn
from nas.errors import SpecError
from nas.extraction.weights import check_full_weights
from search_spaces import SearchSpace, WidthSpec
from search_spaces.layers import input_index, input_mask, scale_channels, sliced_layer

__all__ = [
    "ChannelOrder",
    "extract",
    "input_index",
    "kept_channels",
    "mask_channels",
    "permute_channels",
    "sliced_layer",
    "spec_masks",
]

ChannelOrder = Mapping[str, torch.Tensor]


def kept_channels(spec: WidthSpec, order: ChannelOrder | None = None) -> dict[str, torch.Tensor]:
    """Per unit, the sorted indices of the channels a spec keeps."""
    space = spec.get_space()
    out: dict[str, torch.Tensor] = {}
    for unit in space.units:
        perm = order[unit.name] if order is not None else torch.arange(unit.max_width)
        if perm.numel() != unit.max_width:
            raise SpecError(
                f"channel order of unit {unit.name} has {perm.numel()} entries, "
                f"expected {unit.max_width}"
            )
        out[unit.name] = torch.sort(perm[: spec.widths[unit.name]].long()).values
    return out


# -- the masked full model (reference semantics) ---------------------------------------------------
def mask_channels(
    model: nn.Module, space: SearchSpace, masks: Mapping[str, torch.Tensor]
) -> list[RemovableHandle]:
    """Switch channels off by ``masks`` (per unit, per channel): every BN layer's output is
    scaled by its channels' masks, and so is the input of every layer a switched-off channel
    would reach without passing a BN (:attr:`SearchSpace.input_masks`).

    With 0/1 masks this is the full network with the dropped channels switched off, the
    reference an extracted network must reproduce; the supernet masks the same places. Returns
    the hook handles (``.remove()``).
    """
    handles = []
    inputs = set(space.input_masks)
    for layer in space.layers:
        m = input_mask(layer, masks)
        if m is None:
            continue
        module = model.get_submodule(layer.name)
        if layer.kind == "bn":
            handles.append(module.register_forward_hook(_scale_output(m)))
        elif layer.name in inputs:
            handles.append(module.register_forward_pre_hook(_scale_input(m)))
    return handles


def _scale_output(mask: torch.Tensor):  # type: ignore[no-untyped-def]
    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        return scale_channels(output, mask)

    return hook


def _scale_input(mask: torch.Tensor):  # type: ignore[no-untyped-def]
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        return (scale_channels(inputs[0], mask), *inputs[1:])

    return hook


def spec_masks(spec: WidthSpec, order: ChannelOrder | None = None) -> dict[str, torch.Tensor]:
    """0/1 masks per unit for the channels a spec keeps."""
    space = spec.get_space()
    masks = {}
    for unit, idx in kept_channels(spec, order).items():
        m = torch.zeros(space.max_widths[unit])
        m[idx] = 1.0
        masks[unit] = m
    return masks


@torch.no_grad()
def extract(
    model: nn.Module | Mapping[str, torch.Tensor],
    spec: WidthSpec,
    order: ChannelOrder | None = None,
    *,
    recalibrate: Iterable[Any] | None = None,
    recalibrate_images: int | None = DEFAULT_CALIBRATION_IMAGES,
) -> nn.Module:
    """The standalone network of ``spec`` with weights sliced from the full ``model`` (on the
    CPU).

    ``model`` is the full-width network of the spec's space (or its state_dict). ``order`` maps
    units to channel orders (most important first); without it the first channels are kept.
    The result is in eval mode if ``model`` is a module in eval mode.

    The sliced BatchNorm layers keep the full network's running statistics, which no longer
    fit the smaller network's activations (evaluated as it is, it can fall to chance).
    ``recalibrate``: ``(x, y)`` batches (say the training loader) on whose first
    ``recalibrate_images`` images the statistics are recomputed for the new widths, exactly as
    :func:`nas.engine.recalibrate_bn` does (to do that on a GPU, move the result there and call
    it yourself).
    """
    spec.validate()
    space = spec.get_space()
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    check_full_weights(space, state)
    keep = kept_channels(spec, order)
    pruned = space.build(spec.widths)
    new_state = pruned.state_dict()
    for key, tensor in state.items():  # what no layer of the table sizes: as it is (a traced
        if key in new_state and new_state[key].shape == tensor.shape:  # network's own tensors)
            new_state[key] = tensor.clone()
    for layer in space.layers:
        for key, tensor in sliced_layer(layer, state, keep).items():
            new_state[key] = tensor
    pruned.load_state_dict(new_state)
    if isinstance(model, nn.Module):
        pruned.train(model.training)
    if recalibrate is not None:
        recalibrate_bn(pruned, recalibrate, images=recalibrate_images)
    return pruned


@torch.no_grad()
def permute_channels(model: nn.Module, space: SearchSpace, order: ChannelOrder) -> None:
    """Reorder every unit's channels in place so that channel ``i`` becomes ``order[u][i]``.

    Writers, BN layers and readers of a unit are permuted together, so the network computes
    exactly the same function; afterwards "the first ``w`` channels" of a unit are the ``w``
    most important ones.
    """
    state = model.state_dict()
    full = {u.name: order[u.name].long() for u in space.units}
    new_state = dict(state)
    for layer in space.layers:
        new_state.update(sliced_layer(layer, state, full))
    model.load_state_dict(new_state)
