"""Channel interpretation maps into a directory as a library call: :func:`run_explain` (what
``nas explain`` runs).

The network of a finished run (its weights untouched) and a layer of it (default: the last
stage end, :func:`nas.engine.features.stage_ends`): the class-by-channel importances learned by
perturbation on ``images`` training images (:func:`~nas.interpretation.maps.learn_importances`),
then, on the test split (reported, nothing chosen on it), each class's maps over its first
images and the accuracy when the layer loses the top quarter of the predicted class's channels,
against a random quarter. Writes ``importance.csv`` (one row per class, one column per channel),
``maps/class_K.png`` (per class: its images and their maps), ``metrics.json`` and ``args.yaml``
(default folder: ``RUN_DIR/explain``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nas.data import DataBundle, DataOptions
from nas.engine.features import stage_ends
from nas.errors import ConfigError
from nas.extraction import load_model
from nas.interpretation.maps import class_maps, deletion_accuracy, learn_importances
from nas.io import write_json, write_yaml
from nas.options import record
from nas.plots import plot_class_maps
from nas.rundir import prepare_out_dir, run_output
from nas.runs import check_data_fits, environment, resolve_threads, static_run_dir, torch_threads
from search_spaces import WidthSpec

__all__ = ["layer_channels", "run_explain"]


def layer_channels(model: nn.Module, layer: str | None, example: Tensor) -> tuple[str, int]:
    """The layer to explain (default: the last stage end) and its output channels; one line
    for a name that is not a layer with feature maps."""
    ends = stage_ends(model, example)
    name = layer if layer is not None else ends[-1]
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise ConfigError(
            f"--layer {name!r} is not a layer of the network (its stage ends: {', '.join(ends)})"
        )
    out: dict[str, Any] = {}
    handle = modules[name].register_forward_hook(lambda _m, _i, o: out.update(o=o))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        handle.remove()
        model.train(was_training)
    o = out.get("o")
    if not isinstance(o, Tensor) or o.dim() != 4:
        raise ConfigError(
            f"--layer {name} gives no feature maps (explain a layer with a 4-D output: its stage "
            f"ends are {', '.join(ends)})"
        )
    return name, int(o.shape[1])


def _first_images(loader: Any, count: int) -> list[tuple[Tensor, Tensor]]:
    out, seen = [], 0
    for x, y, *_ in loader:
        x, y = x[: count - seen], y[: count - seen]
        out.append((x, y))
        seen += int(y.shape[0])
        if seen >= count:
            break
    return out


def run_explain(
    run_dir: str | Path,
    data: DataOptions,
    *,
    layer: str | None = None,
    images: int = 512,
    per_class: int = 6,
    sparsity: float = 0.5,
    steps: int = 300,
    seed: int = 0,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    threads: int | None = None,
) -> dict[str, Any]:
    """``nas explain``: see the module; returns ``metrics.json``'s contents."""
    source = static_run_dir(
        run_dir, "holds a per-input (conditional) network; explain a static one (--static)"
    )
    out = Path(out_dir) if out_dir is not None else source / "explain"
    inputs: list[str | Path | None] = [*data.input_paths()]
    prepare_out_dir(out, overwrite=overwrite, inputs=inputs)
    spec = WidthSpec.load(source / "arch.json")
    model = load_model(source).eval()
    bundle = data.load(seed)
    check_data_fits(spec.get_space(), bundle)
    count = resolve_threads(threads)
    with run_output(out, overwrite=overwrite, inputs=inputs), torch_threads(count):
        learn = _first_images(bundle.train, images)
        name, channels = layer_channels(model, layer, learn[0][0])
        write_yaml(
            out / "args.yaml",
            {
                "command": "explain",
                "run_dir": str(run_dir),
                "layer": name,
                "images": images,
                "per_class": per_class,
                "sparsity": sparsity,
                "steps": steps,
                "seed": seed,
                **record(data),
                "threads": count,
                "data": bundle.describe(),
                "environment": environment(),
            },
        )
        k = bundle.num_classes
        importances = learn_importances(
            model, name, learn, k, channels, sparsity=sparsity, steps=steps, seed=seed
        )
        _write_table(out / "importance.csv", importances, _class_names(bundle))
        _draw_maps(model, name, bundle, importances, per_class, out / "maps")
        remove = max(1, math.ceil(channels / 4))
        full, without_top, without_random = deletion_accuracy(
            model, name, bundle.test, importances, remove, seed=seed
        )
        metrics = {
            "run_dir": str(run_dir),
            "layer": name,
            "channels": channels,
            "classes": k,
            "images": sum(int(y.shape[0]) for _, y in learn),
            "mean_importance": float(importances.mean()),
            "channels_above_half": float((importances > 0.5).float().sum(1).mean()),
            "removed_channels": remove,
            "test_acc": full,
            "without_top_acc": without_top,
            "without_random_acc": without_random,
        }
        write_json(out / "metrics.json", metrics)
    return metrics


def _class_names(bundle: DataBundle) -> list[str]:
    names = list(bundle.classes or ())
    return (
        names if len(names) == bundle.num_classes else [str(i) for i in range(bundle.num_classes)]
    )


def _write_table(path: Path, importances: Tensor, names: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", *(f"channel_{c}" for c in range(importances.shape[1]))])
        for name, row in zip(names, importances.tolist(), strict=True):
            writer.writerow([name, *(f"{v:.4f}" for v in row)])


def _draw_maps(
    model: nn.Module,
    layer: str,
    bundle: DataBundle,
    importances: Tensor,
    per_class: int,
    folder: Path,
) -> None:
    """Per class, its first ``per_class`` test images and their maps (``class_K.png``)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = _class_names(bundle)
    chosen: dict[int, list[Tensor]] = {c: [] for c in range(bundle.num_classes)}
    for x, y, *_ in bundle.test:
        for img, label in zip(x, y.tolist(), strict=True):
            if len(chosen[label]) < per_class:
                chosen[label].append(img)
        if all(len(v) >= per_class for v in chosen.values()):
            break
    for c, imgs in chosen.items():
        if not imgs:
            continue
        batch = torch.stack(imgs)
        maps = class_maps(model, layer, batch, torch.full((len(imgs),), c), importances)
        top = importances[c].topk(min(3, importances.shape[1])).indices.tolist()
        plot_class_maps(
            batch,
            maps,
            folder / f"class_{c}.png",
            f"class {names[c]}: {layer}, top channels {top}",
        )
