"""Transfer a found architecture (a width spec) to a new task.

The widths of every unit are kept; the task changes: input channels, number of classes and input
size. The stem and head are rebuilt where the new task needs it (``conv1`` for other channels or,
in torchvision spaces, another stem kind for a different input size; ``fc`` always), so the
network is exactly the spec's space at the spec's widths for the new task.

Two modes: ``scratch`` trains from a seeded random initialisation; ``finetune`` starts from the
found network's weights (every tensor whose shape still fits; the head and a changed stem are
re-initialised). With ``compare`` the full network and a uniform-width network of the same MACs
are trained with the same budget and reported side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.engine import TrainConfig, evaluate, seed_everything, train_model
from nas.errors import ConfigError
from nas.extraction import check_spec_weights, load_fitting
from search_spaces import WidthSpec

__all__ = ["MODES", "TransferResult", "check_mode", "inherit_weights", "retarget", "transfer"]

MODES = ("scratch", "finetune")


def check_mode(mode: str | None, *, has_weights: bool) -> str:
    """The transfer mode (default: ``finetune`` with weights, else ``scratch``), validated."""
    mode = mode or ("finetune" if has_weights else "scratch")
    if mode not in MODES:
        raise ConfigError(f"unknown --mode {mode!r}; choose scratch or finetune")
    if mode == "finetune" and not has_weights:
        raise ConfigError("--mode finetune needs --weights (the found network's model.pt)")
    return mode


def retarget(
    spec: WidthSpec, *, num_classes: int, in_channels: int, input_size: tuple[int, int]
) -> WidthSpec:
    """The same widths in the same space, for another task (validated)."""
    new = WidthSpec(
        spec.space,
        dict(spec.widths),
        int(num_classes),
        int(in_channels),
        (int(input_size[0]), int(input_size[1])),
    )
    return new.validate()


def inherit_weights(
    model: nn.Module, source: WidthSpec, state: Mapping[str, torch.Tensor]
) -> list[str]:
    """Copy into ``model`` every tensor of ``state`` whose shape fits; return the names of the
    model's tensors that keep their fresh initialisation (head, changed stem).

    ``state`` must be the state_dict of ``source``'s network; anything else is refused.
    """
    check_spec_weights(source, state, source="the weights")
    return load_fitting(model, state)


@dataclass
class TransferResult:
    spec: WidthSpec
    model: nn.Module
    metrics: dict[str, Any]


def transfer(
    spec: WidthSpec,
    train_loader: Any,
    test_loader: Iterable[Any],
    *,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int],
    config: TrainConfig,
    val_loader: Iterable[Any] | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
    mode: str | None = None,
    compare: bool = False,
    out_dir: Any = None,
    progress: bool = True,
) -> TransferResult:
    """Build ``spec``'s widths for the new task, train (``scratch``) or fine-tune (from
    ``weights``, the found network's state_dict) on your loaders, and evaluate on
    ``test_loader``. With ``compare`` the full and a uniform-width network of the same MACs are
    trained from scratch with the same ``config`` too (``metrics["compare"]``, and in words
    ``metrics["reference"]``)."""
    mode = check_mode(mode, has_weights=weights is not None)
    if mode == "scratch":
        weights = None
    config.validate()
    new = retarget(spec, num_classes=num_classes, in_channels=in_channels, input_size=input_size)
    seed_everything(config.seed)
    model = new.get_space().build(new.widths)
    fresh = inherit_weights(model, spec, weights) if weights is not None else []
    train_model(
        model,
        train_loader,
        config=config,
        val_loader=val_loader,
        out_dir=out_dir,
        progress=progress,
        desc=f"transfer ({mode})",
    )
    space = new.get_space()
    found = {
        "network": "found",
        "mode": mode,
        "widths": "searched",
        "test_acc": evaluate(model, test_loader, device=config.device).accuracy,
        "macs": new.macs(),
        "macs_ratio": new.macs_ratio(),
        "params": new.params(),
    }
    metrics: dict[str, Any] = {
        "space": new.space,
        "source_task": _task(spec),
        "target_task": _task(new),
        "mode": mode,
        "reinitialised": fresh,
        "epochs": config.epochs,
        **found,
    }
    if compare:
        rows = [found]
        for name, widths in (
            ("full", space.full_widths()),
            ("uniform", space.uniform_widths_for_macs(new.macs_ratio())),
        ):
            rows.append(
                _train_from_scratch(
                    name, space.spec(widths), train_loader, test_loader, config, progress
                )
            )
        metrics["compare"] = rows
        metrics["reference"] = (
            "the full widths and the uniform widths of the same MACs, trained from scratch "
            "with the same options"
        )
    return TransferResult(new, model, metrics)


def _task(spec: WidthSpec) -> dict[str, Any]:
    return {
        "num_classes": spec.num_classes,
        "in_channels": spec.in_channels,
        "input_size": list(spec.input_size),
    }


def _train_from_scratch(
    name: str,
    spec: WidthSpec,
    train_loader: Any,
    test_loader: Iterable[Any],
    config: TrainConfig,
    progress: bool,
) -> dict[str, Any]:
    seed_everything(config.seed)
    net = spec.get_space().build(spec.widths)
    train_model(net, train_loader, config=config, progress=progress, desc=f"transfer ({name})")
    return {
        "network": name,
        "mode": "scratch",
        "widths": "full" if name == "full" else "uniform",
        "test_acc": evaluate(net, test_loader, device=config.device).accuracy,
        "macs": spec.macs(),
        "macs_ratio": spec.macs_ratio(),
        "params": spec.params(),
    }
