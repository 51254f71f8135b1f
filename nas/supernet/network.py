"""The supernet: a full network whose units are switched by channel masks.

Every BN layer that writes a unit is replaced by a
:class:`~nas.supernet.masked_bn.MaskedBatchNorm2d` (same parameters, buffers and key names) that
scales its output channels by the unit's current mask. A mask of shape ``(C,)`` is folded into
the BN's affine parameters, so masking costs no extra activation memory; a per-sample mask
``(N, C)`` (input-conditional gates) multiplies the output.

Masks are set by a gate strategy (:mod:`nas.gates`) before each forward pass. With 0/1 masks that
keep the first ``w`` channels of every unit the supernet computes exactly what the extracted
network of those widths computes, so before the search the channels are put in importance order
(:func:`nas.extraction.permute_channels`, function-preserving) and "the first ``w``" are the
strongest.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from nas.supernet.masked_bn import MaskedBatchNorm2d
from search_spaces import Layer, SearchSpace, round_width
from search_spaces.layers import input_mask, scale_channels

__all__ = ["Supernet", "make_maskable", "nested_masks", "width_choices"]


def width_choices(max_width: int, ratios: Sequence[float], multiple: int = 1) -> list[int]:
    """The distinct widths ``ratio * max_width``, rounded to a multiple of ``multiple`` (at least
    one multiple, at most the maximum; :func:`search_spaces.round_width`), ascending."""
    return sorted({round_width(r * max_width, max_width, multiple) for r in ratios})


def make_maskable(model: nn.Module, space: SearchSpace) -> dict[str, list[MaskedBatchNorm2d]]:
    """Swap every BN layer that normalises a unit's channels for :class:`MaskedBatchNorm2d`, in
    place.

    Parameters and buffers are moved over (state_dict keys unchanged). Returns the masked BNs
    of each unit that a BN normalises alone (a BN over a concatenation of several units, as in
    DenseNet, is masked too but listed by none).
    """
    by_unit: dict[str, list[MaskedBatchNorm2d]] = {u.name: [] for u in space.units}
    for layer in space.layers:
        if layer.kind != "bn" or all(s.unit is None for s in layer.inputs):
            continue
        old = model.get_submodule(layer.name)
        if not isinstance(old, MaskedBatchNorm2d):
            assert isinstance(old, nn.BatchNorm2d)
            new = MaskedBatchNorm2d(
                old.num_features, old.eps, old.momentum, old.affine, old.track_running_stats
            )
            new.load_state_dict(old.state_dict())
            device = next(iter(old.state_dict().values())).device
            new.to(device).train(old.training)
            model.set_submodule(layer.name, new)
            old = new
        if layer.out_unit is not None:
            by_unit[layer.out_unit].append(old)
    return by_unit


def _masked_bn(model: nn.Module, name: str) -> MaskedBatchNorm2d:
    bn = model.get_submodule(name)
    assert isinstance(bn, MaskedBatchNorm2d)
    return bn


def nested_masks(choices: Sequence[int], max_width: int) -> Tensor:
    """``(len(choices), max_width)`` 0/1 matrix: row ``k`` keeps the first ``choices[k]``."""
    idx = torch.arange(max_width)
    return (idx[None, :] < torch.tensor(list(choices))[:, None]).float()


class Supernet(nn.Module):
    """A full-width network plus the masks of its units.

    ``weights()`` are the network's parameters (trained on the training split);
    ``set_masks`` switches channels off for the next forward passes.
    """

    def __init__(self, model: nn.Module, space: SearchSpace) -> None:
        super().__init__()
        self.model = model
        self.space = space
        self.bns = make_maskable(model, space)
        # BNs over several segments (a concatenation) and layers whose input is masked: their
        # masks are put together from the units' masks
        self._composite: list[tuple[Layer, MaskedBatchNorm2d]] = [
            (la, _masked_bn(model, la.name))
            for la in space.layers
            if la.kind == "bn" and la.out_unit is None and any(s.unit for s in la.inputs)
        ]
        masked = set(space.input_masks)
        self._input_layers = [la for la in space.layers if la.name in masked]
        self._input_masks: dict[str, Tensor | None] = {}
        for la in self._input_layers:  # a partial, not a closure: a deep copy hooks the copy
            model.get_submodule(la.name).register_forward_pre_hook(
                functools.partial(Supernet._mask_input, self, la.name)
            )
        # (mode, tau) while an input-conditional strategy gates the passes (its hooks set the
        # masks of each batch); set_masks and set_widths end it
        self.gating: tuple[str, float] | None = None
        self._masks: dict[str, Tensor] = {}  # the units' current masks

    def _mask_input(
        self, name: str, module: nn.Module, inputs: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...] | None:
        m = self._input_masks.get(name)
        return None if m is None else (scale_channels(inputs[0], m), *inputs[1:])

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def weights(self) -> Iterator[nn.Parameter]:
        return self.model.parameters()

    def set_masks(self, masks: Mapping[str, Tensor] | None) -> None:
        """Per-unit masks ``(C,)`` or ``(N, C)``; None switches every channel on."""
        self.gating = None
        self._masks = {}
        for bns in self.bns.values():
            for bn in bns:
                bn.mask = None
        for _, bn in self._composite:
            bn.mask = None
        self._input_masks.clear()
        if masks is not None:
            self.update_masks(masks)

    def update_masks(self, masks: Mapping[str, Tensor]) -> None:
        """Set the masks of the units in ``masks``, keeping the others' (per-input gates set
        each unit's as the forward pass reaches it); the layers whose inputs they reach follow."""
        self._masks.update(masks)
        for unit, m in masks.items():
            for bn in self.bns[unit]:
                bn.mask = m
        for la, bn in self._composite:
            if any(s.unit in masks for s in la.inputs):
                bn.mask = input_mask(la, self._masks)
        for la in self._input_layers:
            if any(s.unit in masks for s in la.inputs):
                self._input_masks[la.name] = input_mask(la, self._masks)

    def set_widths(self, widths: Mapping[str, int] | None) -> None:
        """0/1 masks keeping the first ``widths[u]`` channels (None: full width)."""
        if widths is None:
            self.set_masks(None)
            return
        device = next(self.model.parameters()).device
        self.set_masks(
            {
                u: (torch.arange(self.space.max_widths[u], device=device) < w).float()
                for u, w in widths.items()
            }
        )
