"""Compound scaling into a run directory as a library call: :func:`run_scale` (what ``nas scale``
runs).

1. the space's network at every (alpha, beta, gamma) of the grid (:data:`~nas.scaling.GRID`, or
   the given multipliers) is solved to the MAC target (:func:`~nas.scaling.solve`); candidates
   that come out as the same network are trained once;
2. each distinct candidate is trained from scratch for ``grid_epochs`` on the training split (its
   images resized to its input side) and judged on the validation split: the best is chosen
   (the test split is not looked at);
3. the chosen network is trained from scratch for the run's epochs and saved; with ``compare``,
   the uniform-width network of the same MACs (the space's own depth and input size: one of the
   grid's candidates, alpha = gamma = 1) is trained the same way, from the same seed, beside it.

Both are trained with the cross-entropy alone: a teacher at another input size would see other
images. Writes ``arch.json`` (the scaled space, input size and widths), ``model.pt``,
``model.pt2``, ``model.ts``, ``grid.csv`` (every candidate: multipliers, network, MACs, validation
accuracy), ``metrics.json``, ``args.yaml`` and the training's ``summary.csv``.
"""

from __future__ import annotations

import csv
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

import search_spaces
from nas.cost import parse_target_macs
from nas.data import DataBundle, DataOptions, reseeded
from nas.engine import TrainConfig, evaluate, seed_everything, train_model
from nas.errors import ConfigError
from nas.extraction import save_model
from nas.io import write_json, write_yaml
from nas.options import record
from nas.rundir import prepare_out_dir, run_output
from nas.runs import environment, resolve_threads, torch_threads
from nas.scaling.compound import GRID, Multipliers, Scaled, depth_of, solve
from search_spaces import SearchSpace, WidthSpec

__all__ = ["parse_multipliers", "run_scale"]


def parse_multipliers(text: str | None) -> list[Multipliers]:
    """``None``: the grid; ``"A,B,G"``: those three multipliers alone (each > 0)."""
    if text is None:
        return list(GRID)
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(v > 0 for v in values):
        raise ConfigError(
            f"--multipliers must be ALPHA,BETA,GAMMA (three numbers > 0), got {text!r}"
        )
    return [Multipliers(*values)]


def run_scale(
    space_name: str,
    data: DataOptions,
    config: TrainConfig,
    *,
    target_macs: str,
    tolerance: float = 0.02,
    multipliers: str | None = None,
    grid_epochs: int = 5,
    out_dir: str | Path = "runs/scale",
    compare: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """``nas scale``: see the module; returns ``metrics.json``'s contents."""
    inputs = data.input_paths()
    out = prepare_out_dir(out_dir, overwrite=overwrite, inputs=inputs)
    search_spaces.get_entry(space_name)  # unknown names fail before any data is read
    config.validate()
    grid = parse_multipliers(multipliers)
    if len(grid) > 1 and data.val_fraction == 0:
        raise ConfigError(
            "the grid of multipliers is judged on the validation split, which --val-fraction 0 "
            "leaves empty (give --multipliers A,B,G or a validation fraction)"
        )
    bundle = data.load(config.seed)
    base = search_spaces.create(
        space_name,
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        input_size=bundle.input_size,
    )
    depth_of(base)  # a space whose depth cannot change: one line, before any training
    target = parse_target_macs(target_macs, base.macs())
    candidates = _distinct(_solved(base, grid, target, tolerance))
    uniform = base.spec(base.uniform_widths_for_macs(min(1.0, target / base.macs())))
    count = resolve_threads(threads)
    with run_output(out, overwrite=overwrite, inputs=inputs), torch_threads(count):
        write_yaml(
            out / "args.yaml",
            {
                "command": "scale",
                "space": space_name,
                "target_macs": target_macs,
                "tolerance": tolerance,
                "multipliers": multipliers,
                "grid_epochs": grid_epochs,
                "compare": compare,
                **record(data),
                **record(config),
                "threads": count,
                "data": bundle.describe(),
                "environment": environment(),
            },
        )
        loaded = {tuple(base.input_size): bundle}
        start = time.perf_counter()
        rows = []
        if len(candidates) > 1:
            brief = replace(config, epochs=grid_epochs, warmup_epochs=0)
            for scaled in candidates:
                model, data_at = _train(scaled.spec, data, brief, loaded, None, progress)
                assert data_at.val is not None  # checked before any work
                val = evaluate(model, data_at.val, device=config.device).accuracy
                rows.append(scaled.describe() | _figures(scaled.spec, base) | {"val_acc": val})
            chosen = candidates[max(range(len(rows)), key=lambda i: (rows[i]["val_acc"], -i))]
        else:
            chosen = candidates[0]
            rows.append(chosen.describe() | _figures(chosen.spec, base) | {"val_acc": None})
        _write_grid(out / "grid.csv", rows)
        grid_seconds = time.perf_counter() - start
        model, data_at = _train(chosen.spec, data, config, loaded, out, progress)
        save_model(model, chosen.spec, out)
        metrics: dict[str, Any] = {
            **chosen.describe(),
            **_figures(chosen.spec, base),
            "target_macs": target,
            "test_acc": evaluate(model, data_at.test, device=config.device).accuracy,
            "val_acc": evaluate(model, data_at.val, device=config.device).accuracy
            if data_at.val is not None
            else None,
            "candidates": len(candidates),
            "grid_epochs": grid_epochs if len(candidates) > 1 else 0,
            "epochs": config.epochs,
            "grid_seconds": round(grid_seconds, 1),
            "dataset": data.dataset,
        }
        if compare:
            reference, data_u = _train(uniform, data, config, loaded, out / "uniform", progress)
            metrics |= {
                "reference": "uniform widths of the same MACs at the space's depth and input "
                "size, trained the same way",
                "uniform_acc": evaluate(reference, data_u.test, device=config.device).accuracy,
                "uniform_val_acc": evaluate(reference, data_u.val, device=config.device).accuracy
                if data_u.val is not None
                else None,
                "uniform_macs": uniform.macs(),
                "uniform_macs_ratio": uniform.macs() / base.macs(),
            }
        write_json(out / "metrics.json", metrics)
    return metrics


def _solved(
    base: SearchSpace, grid: list[Multipliers], target: float, tolerance: float
) -> list[Scaled]:
    """The grid's networks at the target; multipliers none of whose networks lands in the band
    (the steps of depth, input side and uniform width skip it) are left out, and where that is
    all of them the first one's reason is the error."""
    out, errors = [], []
    for m in grid:
        try:
            out.append(solve(base, m, target, tolerance))
        except ConfigError as exc:
            errors.append(exc)
    if not out:
        raise errors[0]
    return out


def _distinct(candidates: list[Scaled]) -> list[Scaled]:
    """The candidates, each network once (the first multipliers that give it)."""
    seen: dict[tuple[Any, ...], Scaled] = {}
    for c in candidates:
        space = c.spec.get_space()
        key = (space.name, tuple(space.input_size), tuple(sorted(c.spec.widths.items())))
        seen.setdefault(key, c)
    return list(seen.values())


def _figures(spec: WidthSpec, base: SearchSpace) -> dict[str, Any]:
    return {
        "macs": spec.macs(),
        "macs_ratio": spec.macs() / base.macs(),
        "params": spec.params(),
    }


def _train(
    spec: WidthSpec,
    data: DataOptions,
    config: TrainConfig,
    loaded: dict[tuple[int, ...], DataBundle],
    out: Path | None,
    progress: bool,
) -> tuple[nn.Module, DataBundle]:
    """``spec``'s network trained from scratch (seeded) on the data at its input size."""
    space = spec.get_space()
    size = tuple(space.input_size)
    if size not in loaded:
        loaded[size] = replace(data, image_size=size[0]).load(config.seed)
    bundle = loaded[size]
    seed_everything(config.seed)
    model = space.build(spec.widths)
    train_model(
        model,
        reseeded(bundle.train, config.seed),  # every network sees the same batches
        config=config,
        val_loader=bundle.val,
        out_dir=out,
        progress=progress,
        desc=f"train {space.name} at {size[0]}x{size[1]}",
    )
    return model, bundle


def _write_grid(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
