"""Traced search spaces: any torchvision classification model, or a user's own network.

Names with a colon are resolved here (:func:`search_spaces.get_entry` asks this module):

* ``torchvision:NAME``: a torchvision classification model (``torchvision.models.list_models``),
  built with ``weights=None`` (nothing is downloaded), the data's classes, its input channels
  (the convolution that reads the image is rebuilt for them) and, for the ResNet family at
  64 px or less, the 3x3 stride-1 stem without max-pooling that the hand-written ResNet spaces
  use; other families keep their strides;
* ``package.module:factory`` or ``path/to/file.py:factory``: a function (or class) returning an
  ``nn.Module``, called with those of ``num_classes`` and ``in_channels`` it accepts. A file
  factory's name is made absolute, so an ``arch.json`` works from any directory.

The network's channel units, layer table and frozen channels come from
:func:`search_spaces.discover.discover`; building a network at given widths runs the factory
(fresh weights, the model's own initialisation) and cuts every table layer to its widths, so
buffers and modules the table does not list stay as the factory made them.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from search_spaces.discover import Discovery, TraceFailure, discover
from search_spaces.errors import SpaceError, first_line
from search_spaces.layers import (
    FrozenGroup,
    Layer,
    Term,
    Unit,
    resized_layer,
    resolution_stages,
    sliced_layer,
)
from search_spaces.space import SearchSpace, SpaceEntry, add_resolver
from search_spaces.torchvision_resnet import adapt_stem

__all__ = [
    "TORCHVISION_PREFIX",
    "TracedSpace",
    "entry_for",
    "space_factory",
    "torchvision_models",
]

TORCHVISION_PREFIX = "torchvision:"
_RESNETS = ("resnet", "resnext", "wide_resnet")
_NO_AUX = ("googlenet", "inception_v3")

ModelMaker = Callable[[int, int, tuple[int, int]], nn.Module]


class TracedSpace(SearchSpace):
    """A search space whose units are found by tracing the network a factory makes."""

    family = "traced"

    def __init__(
        self,
        name: str,
        make: ModelMaker,
        *,
        num_classes: int,
        in_channels: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__(
            name, num_classes=num_classes, in_channels=in_channels, input_size=input_size
        )
        self._make = make

    # -- the network ------------------------------------------------------------------------------
    def _fresh(self) -> nn.Module:
        """The full network, freshly initialised, on the CPU."""
        with torch.device("cpu"):
            model = self._make(self.num_classes, self.in_channels, self.input_size)
        return model.eval()

    def _skeleton(self) -> nn.Module:
        try:  # no memory, no initialisation; some builders need real tensors (RegNet)
            with torch.device("meta"):
                return self._make(self.num_classes, self.in_channels, self.input_size)
        except (RuntimeError, NotImplementedError):
            return self._fresh().to("meta")

    def _layer_units(self, model: nn.Module) -> dict[str, tuple[str | None, str | None]]:
        raise NotImplementedError("a traced space's table comes from its graph")

    @cached_property
    def discovery(self) -> Discovery:
        try:
            found = discover(self._skeleton(), self.in_channels, self.input_size, label=self.name)
        except TraceFailure as exc:
            raise SpaceError(str(exc)) from None
        if not found.units:
            why = next((g.reason for g in found.frozen if g.reason != "network output"), None)
            raise SpaceError(
                f"{self.name} has no prunable channels"
                + (f" (all frozen: {why})" if why else "")
                + f"; see nas profile {self.name}"
            )
        return found

    @cached_property
    def layers(self) -> tuple[Layer, ...]:
        return self.discovery.layers

    @cached_property
    def units(self) -> tuple[Unit, ...]:
        return self.discovery.units

    def unit_stages(self) -> dict[str, str]:
        """``stageK``: the K-th output resolution from the input down (where the unit's first
        writer writes), ``head`` for units written at 1x1 by a linear layer."""
        writer: dict[str, Layer] = {}
        for la in self.layers:
            if la.kind != "bn" and la.out_unit is not None:
                writer.setdefault(la.out_unit, la)
        level = resolution_stages(writer.values())
        return {
            u: f"stage{level[la.out_pixels]}" if la.kind == "conv" else "head"
            for u, la in writer.items()
        }

    @property
    def frozen(self) -> tuple[FrozenGroup, ...]:
        """Channels kept at full width and why (the network's output among them)."""
        return self.discovery.frozen

    @property
    def input_masks(self) -> tuple[str, ...]:
        return self.discovery.input_masks

    def _constant_terms(self) -> tuple[tuple[Term, ...], tuple[Term, ...]]:
        macs, params = self.discovery.constant_macs, self.discovery.constant_params
        return (
            ((macs, None, None, 1, 1),) if macs else (),
            ((params, None, None, 1, 1),) if params else (),
        )

    @cached_property
    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in self._skeleton().state_dict().items()}

    def build(self, widths: Mapping[str, int] | None = None) -> nn.Module:
        """A freshly initialised network at ``widths`` (full width if None): the factory's
        network with every table layer cut to its widths (the first channels of each unit)."""
        w = self.full_widths() if widths is None else self.check_widths(widths)
        model = self._fresh()
        if w == self.max_widths:
            return model
        keep = {u: torch.arange(width) for u, width in w.items()}
        state = model.state_dict()
        for layer in self.layers:
            model.set_submodule(
                layer.name, resized_layer(layer, model.get_submodule(layer.name), w)
            )
        new_state = model.state_dict()
        for layer in self.layers:
            new_state.update(sliced_layer(layer, state, keep))
        model.load_state_dict(new_state)
        return model


# -- names -----------------------------------------------------------------------------------------
def torchvision_models() -> list[str]:
    """The torchvision classification models ``torchvision:NAME`` accepts."""
    import torchvision.models as models

    return list(models.list_models(module=models))


def entry_for(name: str) -> SpaceEntry | None:
    """The entry of a traced space's name (None: not a traced name)."""
    if ":" not in name:
        return None
    return _entry(_canonical(name))


def _canonical(name: str) -> str:
    where, _, factory = name.rpartition(":")
    if where.endswith(".py"):
        return f"{Path(where).expanduser().resolve()}:{factory}"
    return name


@lru_cache(maxsize=64)
def _entry(name: str) -> SpaceEntry:
    where, _, what = name.rpartition(":")
    if name.startswith(TORCHVISION_PREFIX):
        return _torchvision_entry(name, what)
    if not where or not what:
        raise SpaceError(
            f"space {name!r} must be torchvision:NAME, module:factory or file.py:factory"
        )
    factory = _load_factory(where, what)
    return _user_entry(name, factory)


def _torchvision_entry(name: str, arch: str) -> SpaceEntry:
    import torchvision.models as models

    if arch not in torchvision_models():
        families = {
            fam: models.list_models(module=getattr(models, fam))
            for fam in ("detection", "segmentation", "video", "optical_flow", "quantization")
        }
        family = next((f for f, names in families.items() if arch in names), None)
        if family is not None:
            raise SpaceError(
                f"{name} is not a torchvision classification model ({family}); "
                f"see torchvision.models.list_models(module=torchvision.models)"
            )
        raise SpaceError(
            f"unknown torchvision model {arch!r}; choose a classification model such as "
            f"mobilenet_v2, efficientnet_b0, resnet18"
        )

    def make(num_classes: int, in_channels: int, size: tuple[int, int]) -> nn.Module:
        return _torchvision_model(arch, num_classes, in_channels, size)

    return SpaceEntry(
        name,
        space_factory(make),
        1000,
        (224, 224),
        f"torchvision {arch}, traced; stem and head adapt to the data",
    )


def _torchvision_model(
    arch: str, num_classes: int, in_channels: int, size: tuple[int, int]
) -> nn.Module:
    import torchvision.models as models

    options: dict[str, Any] = {"weights": None, "num_classes": num_classes}
    if arch in _NO_AUX:
        options.update(aux_logits=False, init_weights=False)
    model = models.get_model_builder(arch)(**options)
    if arch.startswith(_RESNETS):  # the hand-written torchvision spaces' stem rule
        adapt_stem(model, in_channels, size)
    elif in_channels != 3:
        _adapt_input(model, in_channels, f"torchvision:{arch}")
    return model


def _adapt_input(model: nn.Module, in_channels: int, label: str) -> None:
    """Rebuild the convolutions that read the image for ``in_channels`` channels."""
    from search_spaces.discover import trace

    gm = trace(model, label)
    image = next(n for n in gm.graph.nodes if n.op == "placeholder")
    readers = [
        str(n.target)
        for n in image.users
        if n.op == "call_module" and isinstance(model.get_submodule(str(n.target)), nn.Conv2d)
    ]
    if not readers or len(readers) != len(image.users):
        raise SpaceError(f"cannot adapt {label} to {in_channels} input channels")
    for path in readers:
        old = model.get_submodule(path)
        assert isinstance(old, nn.Conv2d)
        new = nn.Conv2d(
            in_channels,
            old.out_channels,
            old.kernel_size,  # type: ignore[arg-type]
            old.stride,  # type: ignore[arg-type]
            old.padding,  # type: ignore[arg-type]
            old.dilation,  # type: ignore[arg-type]
            old.groups if old.groups == 1 else in_channels,
            old.bias is not None,
            old.padding_mode,
            device=old.weight.device,
        )
        model.set_submodule(path, new)


def _load_factory(where: str, what: str) -> Callable[..., Any]:
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise SpaceError(f"no such file: {where}")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        module_name = f"channel_nas_user_{digest}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise SpaceError(f"cannot import {where}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # so that worker processes find it again
            try:
                spec.loader.exec_module(module)
            except Exception as exc:  # the user's code: any error, one line
                del sys.modules[module_name]
                raise SpaceError(f"cannot import {where} ({first_line(exc)})") from None
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:  # ModuleNotFoundError, or the module's own error
            raise SpaceError(f"cannot import {where} ({first_line(exc)})") from None
    factory = getattr(module, what, None)
    if factory is None:
        raise SpaceError(f"{where} does not define {what}")
    if not callable(factory):
        raise SpaceError(f"{where}:{what} is not callable")
    return factory


def _user_entry(name: str, factory: Callable[..., Any]) -> SpaceEntry:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    takes = {p for p in ("num_classes", "in_channels") if p in params}
    default = params["num_classes"].default if "num_classes" in params else None

    def make(num_classes: int, in_channels: int, size: tuple[int, int]) -> nn.Module:
        given = {"num_classes": num_classes, "in_channels": in_channels}
        try:
            model = factory(**{k: v for k, v in given.items() if k in takes})
        except Exception as exc:  # the user's code: any error, one line
            raise SpaceError(f"{name} failed: {first_line(exc)}") from None
        if not isinstance(model, nn.Module):
            raise SpaceError(f"{name} returned {type(model).__name__}, not an nn.Module")
        return model

    traced = space_factory(make)

    def space(
        space_name: str, num_classes: int, in_channels: int, size: tuple[int, int]
    ) -> SearchSpace:
        made = traced(space_name, num_classes, in_channels, size)
        assert isinstance(made, TracedSpace)
        if "num_classes" not in takes:
            _check_classes(made, num_classes, name)
        return made

    classes = default if isinstance(default, int) and not isinstance(default, bool) else 0
    return SpaceEntry(name, space, classes, None, f"{name}, traced")


def _check_classes(space: TracedSpace, num_classes: int, name: str) -> None:
    head = next((la for la in space.layers if la.writes_output), None)
    got = head.out_channels if head is not None else None
    if got is not None and got != num_classes:
        raise SpaceError(
            f"{name} takes no num_classes and its output has {got} features; "
            f"the data has {num_classes} classes"
        )


def space_factory(make: ModelMaker) -> Callable[[str, int, int, tuple[int, int]], SearchSpace]:
    """A registry factory (name, classes, channels, size) -> the traced space of ``make``'s
    network."""

    def space(name: str, num_classes: int, in_channels: int, size: tuple[int, int]) -> SearchSpace:
        return TracedSpace(
            name, make, num_classes=num_classes, in_channels=in_channels, input_size=size
        )

    return space


add_resolver(entry_for)
