"""Extraction: turn a trained full-width network plus a width spec into a really smaller network.

Every conv, BN and linear tensor is sliced to the kept channels of the units that size it, so the
standalone network computes exactly what the full network computes with the dropped channels
masked to zero (:func:`mask_channels`). Which channels are kept is set by a per-unit *channel
order* (most important first, see :func:`channel_order`): a unit of width ``w`` keeps the first
``w`` channels of its order.

Saved models are "spec + state_dict" (plus a TorchScript copy for deployment without this
package): ``arch.json``, ``model.pt`` (loads with ``torch.load(..., weights_only=True)``) and
``model.ts``. :func:`load_model` rebuilds the network from the first two.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from nas.errors import SpecError, WeightsError
from nas.io import atomic_torch_save, atomic_write_bytes, load_state_dict_file
from search_spaces import Layer, SearchSpace, WidthSpec

ChannelOrder = Mapping[str, torch.Tensor]
ORDER_CRITERIA = ("l1", "bn", "first")


# -- which channels to keep ------------------------------------------------------------------------
@torch.no_grad()
def channel_order(
    model: nn.Module, space: SearchSpace, criterion: str = "l1"
) -> dict[str, torch.Tensor]:
    """Per unit, the channel indices sorted from most to least important.

    * ``l1``: the L1 norm of the filters that write the unit (Li et al. 2017); for a coupled
      residual unit the norms of all its writers, each normalised by its mean, are summed;
    * ``bn``: the absolute BN scale |gamma| of the unit's BN layers, summed (network slimming);
    * ``first``: keep the first channels (no reordering).
    """
    if criterion not in ORDER_CRITERIA:
        raise SpecError(
            f"unknown channel order {criterion!r}; choose one of {', '.join(ORDER_CRITERIA)}"
        )
    modules = dict(model.named_modules())
    scores = {u.name: torch.zeros(u.max_width) for u in space.units}
    for layer in space.layers:
        if layer.out_unit is None or criterion == "first":
            continue
        module = modules[layer.name]
        if criterion == "l1" and layer.kind == "conv":
            assert isinstance(module, nn.Conv2d)
            s = module.weight.detach().abs().flatten(1).sum(1).float().cpu()
        elif criterion == "bn" and layer.kind == "bn":
            assert isinstance(module, nn.BatchNorm2d)
            s = module.weight.detach().abs().float().cpu()
        else:
            continue
        scores[layer.out_unit] += s / s.mean().clamp_min(1e-12)
    return {u: torch.argsort(s, descending=True, stable=True) for u, s in scores.items()}


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
    """Multiply the output of every BN layer of unit ``u`` by ``masks[u]`` (per channel).

    With 0/1 masks this is the full network with the dropped channels switched off, the
    reference an extracted network must reproduce. Returns the hook handles (``.remove()``).
    """
    handles = []
    for layer in space.layers:
        if layer.kind == "bn" and layer.out_unit is not None and layer.out_unit in masks:
            m = masks[layer.out_unit]
            module = model.get_submodule(layer.name)
            handles.append(module.register_forward_hook(_scale_hook(m)))
    return handles


def _scale_hook(mask: torch.Tensor):  # type: ignore[no-untyped-def]
    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        return output * mask.to(output.dtype).view(1, -1, 1, 1)

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


# -- extraction ------------------------------------------------------------------------------------
def check_full_weights(
    space: SearchSpace, state: Mapping[str, torch.Tensor], source: str = "weights"
) -> None:
    """Raise :class:`WeightsError` unless ``state`` fits the full-width network of ``space``."""
    expected = space.state_shapes
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        detail = (f"missing {missing[:3]}" if missing else "") + (
            f"{'; ' if missing else ''}unexpected {unexpected[:3]}" if unexpected else ""
        )
        raise WeightsError(
            f"{source} do not match space {space.name} "
            f"({space.num_classes} classes, {space.in_channels} input channels, "
            f"{space.input_size[0]}x{space.input_size[1]}): {detail}"
        )
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            raise WeightsError(
                f"{source} do not match space {space.name}: {k} has shape "
                f"{tuple(state[k].shape)}, expected {shape}"
            )


@torch.no_grad()
def extract(
    model: nn.Module | Mapping[str, torch.Tensor],
    spec: WidthSpec,
    order: ChannelOrder | None = None,
) -> nn.Module:
    """The standalone network of ``spec`` with weights sliced from the full ``model``.

    ``model`` is the full-width network of the spec's space (or its state_dict). ``order`` maps
    units to channel orders (most important first); without it the first channels are kept.
    The result is in eval mode if ``model`` is a module in eval mode.
    """
    spec.validate()
    space = spec.get_space()
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    check_full_weights(space, state)
    keep = kept_channels(spec, order)
    pruned = space.build(spec.widths)
    new_state = pruned.state_dict()
    for layer in space.layers:
        for key, tensor in _sliced_layer(layer, state, keep).items():
            new_state[key] = tensor
    pruned.load_state_dict(new_state)
    if isinstance(model, nn.Module):
        pruned.train(model.training)
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
        new_state.update(_sliced_layer(layer, state, full))
    model.load_state_dict(new_state)


def _sliced_layer(
    layer: Layer, state: Mapping[str, torch.Tensor], keep: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    out_idx = keep[layer.out_unit] if layer.out_unit is not None else None
    in_idx = keep[layer.in_unit] if layer.in_unit is not None else None
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


# -- saving and loading ----------------------------------------------------------------------------
MODEL_FILES = ("arch.json", "model.pt", "model.ts")


def save_model(
    model: nn.Module, spec: WidthSpec, out_dir: str | Path, *, torchscript: bool = True
) -> None:
    """Write ``arch.json``, ``model.pt`` (state_dict) and ``model.ts`` (TorchScript)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ts_bytes = _torchscript_bytes(model) if torchscript else None
    spec.save(out / "arch.json")
    atomic_torch_save(state, out / "model.pt")
    if ts_bytes is not None:
        atomic_write_bytes(out / "model.ts", ts_bytes)


def to_torchscript(model: nn.Module) -> torch.jit.ScriptModule:
    """The deployable form of a network: scripted and frozen for inference (eval mode, BN folded
    into the preceding conv). Runs with torch alone; the model itself is left unchanged."""
    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch, still supported
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(copy.deepcopy(model).cpu().eval())
        return torch.jit.freeze(scripted)


def _torchscript_bytes(model: nn.Module) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(to_torchscript(model), buf)
    return buf.getvalue()


def load_model(path: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a saved network from ``arch.json`` + ``model.pt`` (in eval mode).

    ``path`` is a directory written by :func:`save_model` (or by ``nas train``/``nas extract``).
    """
    d = Path(path)
    if not d.is_dir():
        raise WeightsError(f"model directory not found: {d}")
    spec = WidthSpec.load(d / "arch.json")
    state = load_state_dict_file(d / "model.pt")
    model = spec.get_space().build(spec.widths)
    expected = model.state_dict()
    bad = [k for k in expected if k not in state or state[k].shape != expected[k].shape]
    extra = [k for k in state if k not in expected]
    if bad or extra:
        raise WeightsError(
            f"{d / 'model.pt'} does not match {d / 'arch.json'} "
            f"(first mismatch: {(bad or extra)[0]})"
        )
    model.load_state_dict(state)
    return model.to(device).eval()
