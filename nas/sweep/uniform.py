"""The uniform-width curve: at each budget, the uniform network trained the way the searched
network there was."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from nas.engine import evaluate, seed_everything
from nas.extraction import save_model
from nas.io import read_json, write_json
from nas.jobs.common import RunOptions, load_search_run, load_supernet
from nas.supernet import CALIBRATION_BATCHES, extract_at, take_batches
from nas.sweep.config import SweepConfig
from nas.sweep.pareto import OBJECTIVE
from nas.width_search import SearchConfig, finetune
from search_spaces import SearchSpace

__all__ = ["uniform_point", "uniform_sources"]


# -- uniform-width baseline curve -----------------------------------------------------------------
def uniform_sources(
    rows: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]], sweep: SweepConfig
) -> list[tuple[float, dict[str, Any]]]:
    """(MAC ratio, trial) of each point of the uniform curve: each listed budget (or each Pareto
    target rounded to 0.01) with the best completed trial searched at that target. A budget
    with no completed trial yet has no point."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("same_as") in (None, "")]
    if sweep.budgets:
        groups = {
            float(b): [r for r in done if float(r["target_macs"]) == b] for b in sweep.budgets
        }
    else:
        groups = {}
        for r in front:
            groups.setdefault(round(float(r["target_macs"]), 2), []).append(r)
    return [
        (ratio, min(trials, key=lambda r: (-r[OBJECTIVE], r["number"])))
        for ratio, trials in sorted(groups.items())
        if trials
    ]


def uniform_point(
    out: Path,
    ratio: float,
    trial: dict[str, Any],
    options: RunOptions,
    search: SearchConfig,
    space: SearchSpace,
    teacher: torch.nn.Module,
    progress: bool,
) -> dict[str, Any]:
    """A uniform-width network at ``ratio`` of the MACs, trained as ``trial``'s network was:
    inherited from its supernet (BN recalibrated for these widths on training batches; built
    anew with ``from_scratch``), then fine-tuned with its options, distilled from ``teacher``
    (the baseline). Cached in ``DIR/uniform/macs-R-trial-NNNN``."""
    run_dir = out / str(trial["run_dir"])
    d = out / "uniform" / f"macs-{ratio:.4f}-{run_dir.name}"
    if (d / "metrics.json").is_file():
        return read_json(d / "metrics.json", "uniform-width metrics")
    _, stored = load_search_run(run_dir)
    config = replace(stored, device=search.device)
    spec = space.spec(space.uniform_widths_for_macs(ratio, config.width_multiple))
    data = options.load(config.seed)  # fresh loaders: a point does not depend on the others
    if config.from_scratch:
        seed_everything(config.seed)
        small = space.build(spec.widths)
    else:
        supernet, _ = load_supernet(run_dir, space, config)
        small = extract_at(supernet, spec, take_batches(data.train, CALIBRATION_BATCHES))
        del supernet
    seed_everything(config.seed)
    finetune(small, teacher, data.train, data.val, config=config, progress=progress)
    point = {
        "target": ratio,
        "macs": spec.macs(),
        "macs_ratio": spec.macs_ratio(),
        "params": spec.params(),
        "test_acc": evaluate(small, data.test, device=config.device).accuracy,
        "supernet_of": int(trial["number"]),
    }
    save_model(small, spec, d, torchscript=False)
    write_json(d / "metrics.json", point)
    return point
