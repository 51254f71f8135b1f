"""Do these weights fit this network? One check, and one "load what fits".

:func:`check_weights` is the one compatibility check (names and shapes of a state_dict against
those a network must have); :func:`check_full_weights` applies it to the full-width network of a
space, :func:`check_spec_weights` to the network of a width spec. :func:`load_fitting` loads
every tensor whose name and shape fit and says which kept their initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nas.errors import WeightsError
from search_spaces import SearchSpace, WidthSpec

__all__ = [
    "check_full_weights",
    "check_initial_weights",
    "check_spec_weights",
    "check_weights",
    "load_fitting",
    "spec_state_shapes",
]


def check_weights(
    state: Mapping[str, torch.Tensor],
    shapes: Mapping[str, tuple[int, ...]],
    *,
    source: str,
    target: str,
) -> None:
    """Raise :class:`WeightsError` (one line: ``{source} do not match {target}: ...``) unless
    ``state`` holds exactly the tensors ``shapes`` names, with those shapes."""
    missing = [k for k in shapes if k not in state]
    unexpected = [k for k in state if k not in shapes]
    if missing or unexpected:
        parts = ([f"missing {missing[:3]}"] if missing else []) + (
            [f"unexpected {unexpected[:3]}"] if unexpected else []
        )
        raise WeightsError(f"{source} do not match {target}: {'; '.join(parts)}")
    for k, shape in shapes.items():
        if tuple(state[k].shape) != tuple(shape):
            raise WeightsError(
                f"{source} do not match {target}: {k} has shape {tuple(state[k].shape)}, "
                f"expected {tuple(shape)}"
            )


def check_full_weights(
    space: SearchSpace, state: Mapping[str, torch.Tensor], source: str = "weights"
) -> None:
    """``state`` is a state_dict of the full-width network of ``space``."""
    h, w = space.input_size
    target = (
        f"space {space.name} ({space.num_classes} classes, {space.in_channels} input channels, "
        f"{h}x{w})"
    )
    check_weights(state, space.state_shapes, source=source, target=target)


def _data_layers(space: SearchSpace) -> dict[str, int]:
    """The layers whose shape the data set, with that dimension: the input conv (1: the image
    channels) and the classifier (0: the classes)."""
    out: dict[str, int] = {}
    for layer in space.layers:
        if layer.reads_input:
            out[layer.name] = 1
        elif layer.writes_output:
            out[layer.name] = 0
    return out


def check_initial_weights(
    space: SearchSpace, state: Mapping[str, torch.Tensor], source: str = "weights"
) -> None:
    """``state`` is the full-width network of ``space``, perhaps of another task: only the
    input layer (other image channels) and the classifier (other classes) may differ, in that
    dimension, or be missing; they then start afresh. Anything else (a pruned network,
    another space) raises :class:`WeightsError` in one line."""
    shapes, data = space.state_shapes, _data_layers(space)
    unexpected = [k for k in state if k not in shapes]
    if unexpected:
        raise WeightsError(f"{source} are not a {space.name} network (unexpected {unexpected[:3]})")
    only = "only the input layer and the classifier may differ from the data's"
    for key, shape in shapes.items():
        owner = key.rsplit(".", 1)[0]
        if key not in state:
            if owner in data or key.endswith("num_batches_tracked"):
                continue
            raise WeightsError(f"{source} do not fit {space.name}: missing {key} ({only})")
        got, dim = tuple(state[key].shape), data.get(owner)
        if got == tuple(shape):
            continue
        others_fit = len(got) == len(shape) and all(
            a == b for i, (a, b) in enumerate(zip(got, shape, strict=True)) if i != dim
        )
        if dim is not None and others_fit:
            continue
        raise WeightsError(
            f"{source} do not fit {space.name}: {key} has shape {got}, expected {tuple(shape)} "
            f"({only}; a pruned network cannot seed a search)"
        )


def spec_state_shapes(spec: WidthSpec) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state_dict of the network of ``spec`` (no network is built):
    the full shapes with every layer's output and input dimensions at the units' widths."""
    space = spec.get_space()
    shapes = dict(space.state_shapes)
    for layer in space.layers:
        prefix = layer.name + "."
        for key, shape in shapes.items():
            if not key.startswith(prefix) or "." in key[len(prefix) :] or not shape:
                continue
            new = list(shape)
            if layer.kind == "bn":
                new[0] = layer.width_in(spec.widths)
                shapes[key] = tuple(new)
                continue
            new[0] = layer.width_out(spec.widths)
            if len(new) >= 2 and layer.groups == 1:
                new[1] = layer.width_in(spec.widths)
            shapes[key] = tuple(new)
    return shapes


def check_spec_weights(
    spec: WidthSpec, state: Mapping[str, torch.Tensor], source: str = "weights"
) -> None:
    """``state`` is a state_dict of the network of ``spec`` (its space at its widths)."""
    target = f"the network of the spec ({spec.space} at its widths)"
    check_weights(state, spec_state_shapes(spec), source=source, target=target)


def load_fitting(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list[str]:
    """Load into ``model`` every tensor of ``state`` whose name and shape fit; return the names
    of the model's tensors that kept their initialisation (none: everything fitted)."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and tuple(v.shape) == own[k].shape}
    own.update(fitting)
    model.load_state_dict(own)
    return [k for k in own if k not in fitting and not k.endswith("num_batches_tracked")]
