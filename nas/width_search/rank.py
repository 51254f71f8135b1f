"""The GCN ranking of a finished search as a library call: :func:`run_rank` (what ``nas rank``
runs).

The GCN predictor fitted on a finished search's supernet, its pick, and (with ``holdout > 0``)
the evidence whether its ranking is worth it. Writes into ``out_dir`` (default ``RUN/rank``):
``args.yaml``, ``predictor.pt``, ``selection.json``, ``arch.json`` (the selected spec),
``rank_metrics.json`` and ``rank_scatter.png``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from nas.engine import read_checkpoint
from nas.errors import ConfigError
from nas.extraction import load_model
from nas.io import json_safe, write_json, write_yaml
from nas.options import record
from nas.plots import plot_rank_scatter
from nas.rundir import prepare_out_dir, run_output
from nas.runs import (
    environment,
    resolve_threads,
    search_data,
    torch_threads,
)
from nas.selection import (
    RankConfig,
    cost_fields,
    cost_key,
    ranking_evidence,
    sample_pool,
    select_with_predictor,
    undefined_note,
)
from nas.supernet import take_images
from nas.width_search.checkpoint import SEARCH_CHECKPOINT, SEARCH_FORMAT
from nas.width_search.config import SearchConfig
from nas.width_search.saved import load_search_run, load_supernet
from nas.width_search.setup import search_budget
from predictors import GraphEncoder

__all__ = ["check_search_finished", "run_rank"]


def check_search_finished(run: Path, config: SearchConfig) -> None:
    """Refuse a run whose search checkpoint stops before the last search epoch."""
    state = read_checkpoint(run / SEARCH_CHECKPOINT, SEARCH_FORMAT, "search")
    done, total = len(state.get("records", [])), config.warmup_epochs + config.search_epochs
    if done < total:
        raise ConfigError(
            f"the search in {run} has not finished ({done} of {total} epochs in "
            f"{SEARCH_CHECKPOINT}); complete it first with nas search --resume --out {run}"
        )


def run_rank(
    run_dir: str | Path,
    config: RankConfig,
    *,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """``nas rank``: fit the GCN predictor on a finished search's supernet, select the best of
    its top-k, and (with ``holdout > 0``) measure the ranking against stand-alone training.

    Everything is checked (run, finished search, output directory, reachable budget) before
    anything is written. Writes into ``out_dir`` (default ``RUN/rank``): ``args.yaml``,
    ``predictor.pt``, ``selection.json``, ``arch.json`` (the selected spec),
    ``rank_metrics.json`` and ``rank_scatter.png``; a run stopped by an error leaves none.
    ``threads``: torch threads (default: the count the search run recorded).
    """
    config.validate()
    run = Path(run_dir)
    options, search_config = load_search_run(run)
    check_search_finished(run, search_config)
    inputs: list[str | Path | None] = [
        run / "args.yaml",
        run / SEARCH_CHECKPOINT,
        run / "baseline",
        *options.inputs(),
    ]
    out = prepare_out_dir(
        Path(out_dir) if out_dir else run / "rank", overwrite=overwrite, inputs=inputs
    )
    data, space = search_data(options, search_config.seed)
    assert data.val is not None  # search_data refuses data without a validation split
    supernet, strategy = load_supernet(run, space, search_config)
    count = resolve_threads(threads, run)
    # the search's budget: MACs, or (--cost latency) its table's predicted milliseconds
    budget = search_budget(search_config, space, threads=count)
    cost, target = budget.cost, budget.target
    encoder = GraphEncoder.for_space(space)
    pool = sample_pool(encoder, strategy.choices, target, budget.tolerance, config, cost=cost)
    teacher = load_model(run / "baseline") if (run / "baseline" / "arch.json").is_file() else None
    calibration = take_images(data.train, search_config.calib_images)
    with run_output(out, overwrite=overwrite, inputs=inputs), torch_threads(count):
        write_yaml(
            out / "args.yaml",
            {
                "command": "rank",
                "run": str(run),
                **record(config),
                "threads": count,
                "environment": environment(),
            },
        )
        start = time.perf_counter()
        selection = select_with_predictor(
            supernet,
            strategy.choices,
            target,
            budget.tolerance,
            calibration,
            data.train,
            data.val,
            teacher if search_config.kd_alpha > 0 else None,
            search_config.finetune_config(),
            config,
            distill=search_config.distill(),
            pool=pool,
            progress=progress,
            cost=cost,
        )
        selection.predictor.save(out / "predictor.pt")
        selection.spec.save(out / "arch.json")
        write_json(out / "selection.json", selection.summary())
        metrics: dict[str, Any] = {
            "space": space.name,
            "cost": cost.name,
            f"target_{cost_key(cost)}": target,
            f"target_{cost.name}_ratio": target / cost.full(),
            "tolerance": budget.tolerance,
            "selected_macs": selection.spec.macs(),
            "selected_macs_ratio": selection.spec.macs_ratio(),
            **{f"selected_{k}": v for k, v in cost_fields(cost, selection.spec).items()},
            "selected_val_acc": max(c["val_acc"] for c in selection.candidates),
            "sampling": config.sampling,
            "samples": config.samples,
            "samples_scored": len(selection.sample_scores),
            "pool": config.pool,
            "pool_ranked": selection.pool_size,
            "top_k": config.top_k,
            "select_seconds": round(selection.seconds, 2),
        }
        if config.holdout > 0:
            # the truth: what the search delivers, with its fine-tuning options and teacher
            finetune = search_config.finetune_config()
            finetune = replace(
                finetune,
                epochs=config.holdout_epochs or finetune.epochs,
                lr=config.holdout_lr or finetune.lr,
                seed=config.seed,
            )
            evidence = ranking_evidence(
                supernet,
                selection.predictor,
                strategy.choices,
                target,
                budget.tolerance,
                calibration,
                data.train,
                data.val,
                data.test,
                teacher if search_config.kd_alpha > 0 else None,
                finetune,
                search_config.distill(),
                config,
                exclude=selection.sample_widths,
                progress=progress,
                cost=cost,
            )
            note = undefined_note(evidence["table"])
            metrics |= {
                "correlations": evidence["table"],
                "noise_ceiling": evidence["noise_ceiling"],
                **({"correlations_note": note} if note else {}),
                "holdout": evidence["holdout"],
                "holdout_epochs": finetune.epochs,
                "holdout_lr": finetune.lr,
            }
            plot_rank_scatter(evidence, out / "rank_scatter.png")
        metrics["seconds"] = round(time.perf_counter() - start, 2)
        metrics = json_safe(metrics)
        write_json(out / "rank_metrics.json", metrics)
        return metrics
