"""The uniform-width curve: at each budget, the uniform network trained the way the searched
network there was."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from nas.cost import ResolvedBudget
from nas.engine import evaluate, seed_everything, uniform_twin
from nas.extraction import save_model
from nas.io import read_json, write_json
from nas.runs import RunOptions
from nas.supernet import extract_at, take_images
from nas.sweep.config import AXES, CostAxis, SweepConfig
from nas.sweep.pareto import LATENCY_METRICS, OBJECTIVE
from nas.width_search import SearchConfig, finetune, load_search_run, load_supernet
from nas.width_search.setup import cost_model
from search_spaces import SearchSpace

__all__ = ["uniform_point", "uniform_sources"]


# -- uniform-width baseline curve -----------------------------------------------------------------
def uniform_sources(
    rows: Sequence[dict[str, Any]],
    front: Sequence[dict[str, Any]],
    sweep: SweepConfig,
    axis: CostAxis = AXES["macs"],
) -> list[tuple[float, dict[str, Any]]]:
    """(budget ratio, trial) of each point of the uniform curve: each listed budget (or each
    Pareto target rounded to 0.01) with the best completed trial searched at that target. A
    budget with no completed trial yet has no point."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("same_as") in (None, "")]
    param = axis.param
    if sweep.budgets:
        groups = {float(b): [r for r in done if float(r[param]) == b] for b in sweep.budgets}
    else:
        groups = {}
        for r in front:
            groups.setdefault(round(float(r[param]), 2), []).append(r)
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
    """A uniform-width network at ``ratio`` of the MACs (with ``--cost latency``: the uniform
    width whose predicted latency comes closest to ``ratio`` of the full network's), trained as
    ``trial``'s network was: inherited from its supernet (BN recalibrated for these widths on
    training batches; built anew with ``from_scratch``), then fine-tuned with its options,
    distilled from ``teacher`` (the baseline). Cached in ``DIR/uniform/COST-R-trial-NNNN``."""
    run_dir = out / str(trial["run_dir"])
    d = out / "uniform" / f"{search.cost}-{ratio:.4f}-{run_dir.name}"
    if (d / "metrics.json").is_file():
        return read_json(d / "metrics.json", "uniform-width metrics")
    _, stored = load_search_run(run_dir)
    config = replace(stored, device=search.device)
    cost = cost_model(config, space) if config.cost != "macs" else None
    if cost is None:
        spec = space.spec(space.uniform_widths_for_macs(ratio, config.width_multiple))
    else:  # the point's budget: this ratio of the full network's predicted latency
        at = ResolvedBudget(ratio * cost.full(), config.tolerance, cost)
        spec = uniform_twin(at, at.target, multiple=config.width_multiple)
    data = options.load(config.seed)  # fresh loaders: a point does not depend on the others
    if config.from_scratch:
        seed_everything(config.seed)
        small = space.build(spec.widths)
    else:
        supernet, _ = load_supernet(run_dir, space, config)
        small = extract_at(supernet, spec, take_images(data.train, config.calib_images))
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
    if cost is not None:
        from nas.cost.latency import LatencyCost
        from nas.cost.timing import latency_report

        assert isinstance(cost, LatencyCost)
        report = latency_report(cost, dict(spec.widths))
        point |= {k: report[k] for k in LATENCY_METRICS}
    save_model(small, spec, d, torchscript=False)
    write_json(d / "metrics.json", point)
    return point
