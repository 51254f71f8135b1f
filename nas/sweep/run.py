"""``nas sweep``'s job: :func:`run_sweep` (set-up under the lock, the workers, the outputs)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import search_spaces
from nas.data import DataBundle
from nas.engine import TrainConfig, evaluate, seed_everything, tensorboard
from nas.engine.tensorboard import TensorBoardOptions
from nas.errors import ConfigError, NasError
from nas.extraction import load_fitting
from nas.io import load_state_dict_file, write_json
from nas.jobs.base import Command
from nas.options import record
from nas.rundir import check_writable, written_by
from nas.runs import (
    RunOptions,
    initial_weights,
    resolve_threads,
    resolved_args,
    search_data,
    torch_threads,
    train_full,
    write_or_check_args,
)
from nas.sweep.config import AXES, SweepConfig, budget_options
from nas.sweep.lock import LOCK_FILE, fail_orphans, sweep_lock
from nas.sweep.pareto import OBJECTIVE, hypervolume, pareto_rows, trial_rows, write_csv
from nas.sweep.points import plot_fronts
from nas.sweep.study import (
    OBJECTIVES,
    STUDY_FILE,
    SWEEP_VOLATILE,
    check_joinable,
    create_study,
    find_study,
    load_sweep_study,
    open_storage,
    storage_label,
    sweep_options,
)
from nas.sweep.uniform import uniform_point, uniform_sources
from nas.sweep.workers import SWEEP_WARMUP, run_workers
from nas.width_search import SearchConfig, search_budget, warm_up
from nas.width_search.setup import cost_model
from search_spaces import SearchSpace

__all__ = ["COMMAND", "run_sweep"]


def run_sweep(options: RunOptions, search: SearchConfig, sweep: SweepConfig) -> dict[str, Any]:
    """``nas sweep``: an Optuna study of searches sharing one baseline (see :mod:`nas.sweep`).

    Writes into ``options.out_dir``: ``trials.csv``, ``pareto.csv``, ``uniform.csv``,
    ``pareto.png``, ``metrics.json`` (hypervolume), ``args.yaml``, ``study.json``,
    ``baseline/``, ``warmup.pt``, ``uniform/``, ``trials/trial-NNNN/`` (each a ``nas search``
    run directory with its extracted model) and, with the default storage, ``journal.log``.
    Returns the metrics. Running it again with the same options resumes the sweep; several
    processes (or machines sharing the directory) may run it at once on one storage.

    Every input is checked before anything is written: bad input raises a one-line
    :class:`~nas.errors.NasError` and leaves no new directory (and no new study) behind. An
    ``out_dir`` that holds files must hold this sweep.

    Example::

        metrics = run_sweep(
            RunOptions(out_dir="runs/sweep", baseline_epochs=30),
            SearchConfig(warmup_epochs=10, search_epochs=20, finetune_epochs=30),
            SweepConfig(trials=6, budgets=(0.25, 0.5, 0.75)),
        )
    """
    options.validate()
    sweep.validate()
    search.validate()
    axis = AXES[search.cost]
    budgets = sweep.budgets or sweep.macs_range or ()
    if options.overwrite:
        raise ConfigError(
            "nas sweep does not overwrite: running it again resumes the sweep in --out; to start "
            "over, delete that directory or choose another --out"
        )
    out = Path(options.out_dir)
    _check_out_dir(out)
    search_spaces.get_entry(options.space)
    data, space = search_data(options, search.seed)
    threads = resolve_threads(
        options.threads, out if written_by(out) == "sweep" else None, workers=sweep.workers
    )
    # every budget reachable, a latency table of this machine and of the workers' threads
    cost = cost_model(search, space, threads)
    for budget in budgets:
        at: dict[str, Any] = {axis.param: f"{budget:g}"}
        search_budget(replace(search, **at), space, cost=cost)
    initial = initial_weights(options.weights, space)
    options = replace(options, threads=threads)
    sweep_record = record(sweep) | {"storage": storage_label(out, sweep) if sweep.storage else None}
    resolved = resolved_args(options, search, data.describe()) | {"command": "sweep"} | sweep_record
    fingerprint = sweep_options(options, search, sweep, data.describe())
    with torch_threads(threads):
        with sweep_lock(out):
            fresh = not _entries(out)
            try:
                baseline = _set_up(
                    options, search, sweep, out, space, data, initial, resolved, fingerprint
                )
            except NasError:
                if fresh:  # a refused new sweep leaves nothing behind (removed under the lock)
                    shutil.rmtree(out, ignore_errors=True)
                raise
        run_workers(options, search, sweep, out)
        return _sweep_outputs(out, baseline, space, data, options, search, sweep)


def _entries(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.name != LOCK_FILE] if out.is_dir() else []


def _check_holds_sweep(out: Path) -> None:
    """``out`` is new, empty, or holds a sweep (its ``args.yaml`` written by ``nas sweep``)."""
    if _entries(out) and written_by(out) != "sweep":
        raise ConfigError(
            f"output directory {out} is not empty and holds no sweep (no args.yaml of nas "
            "sweep); choose another --out"
        )


def _check_out_dir(out: Path) -> None:
    """The sweep directory is new, empty, or holds a sweep (one being made holds the lock
    file); checked again under the lock."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path exists and is not a directory: {out}")
    if not (out / LOCK_FILE).exists():
        _check_holds_sweep(out)
    check_writable(out)


def _set_up(
    options: RunOptions,
    search: SearchConfig,
    sweep: SweepConfig,
    out: Path,
    space: SearchSpace,
    data: DataBundle,
    initial: dict[str, torch.Tensor] | None,
    resolved: dict[str, Any],
    fingerprint: dict[str, Any],
) -> torch.nn.Module:
    """Under the lock: check the directory and the study, then write ``args.yaml``, train (or
    load) the baseline and the warm-up, and make the study if it is new. Returns the
    baseline."""
    _check_holds_sweep(out)
    storage = open_storage(out, sweep)
    study = find_study(storage, sweep, search.seed)
    if study is not None:
        check_joinable(study, out, fingerprint, sweep)
        fail_orphans(study)
    elif (out / STUDY_FILE).is_file():
        raise ConfigError(
            f"the study {sweep.study!r} of {out} is not in {storage_label(out, sweep)} "
            "(was it deleted, or is this another storage?)"
        )
    write_or_check_args(
        out, resolved, resume=True, volatile=(*SWEEP_VOLATILE, "uniform", "threads")
    )
    base_config = TrainConfig(
        epochs=options.baseline_epochs,
        lr=options.baseline_lr,
        seed=search.seed,
        device=search.device,
    )
    base_config.validate()
    baseline = train_full(
        space, data, initial, base_config, out / "baseline", resume=True, progress=options.progress
    )
    if search.warmup_epochs:
        _shared_warmup(options, search, space, out)
    if study is None:
        axis = AXES[search.cost]
        create_study(
            storage, out, sweep, search.seed, fingerprint, axis.param, (OBJECTIVE, axis.value)
        )
    return baseline


def _shared_warmup(
    options: RunOptions, search: SearchConfig, space: SearchSpace, out: Path
) -> Path:
    """The warm-up every trial starts from (``DIR/warmup.pt``): the epochs a trial's search
    would begin with, run once on the baseline and fresh loaders, exactly as the trial would."""
    data = options.load(search.seed)
    if data.val is None:
        raise ConfigError("a search needs a validation split: --val-fraction must be > 0")
    seed_everything(search.seed)
    baseline = space.build()
    load_fitting(baseline, load_state_dict_file(out / "baseline" / "model.pt"))
    return warm_up(
        baseline.to(search.device).eval(),
        space,
        data.train,
        data.val,
        config=search,
        path=out / SWEEP_WARMUP,
        progress=options.progress,
    )


def _sweep_outputs(
    out: Path,
    baseline: torch.nn.Module,
    space: SearchSpace,
    data: DataBundle,
    options: RunOptions,
    search: SearchConfig,
    sweep: SweepConfig,
) -> dict[str, Any]:
    """The tables, metrics and figure, from the study as it is now. The reading, the
    uniform-width networks and the writing all happen under the lock, so the last process
    to finish writes the newest outputs and a uniform network is trained once."""
    full_acc = evaluate(baseline, data.test, device=search.device).accuracy
    axis = AXES[search.cost]
    with sweep_lock(out):
        study = load_sweep_study(open_storage(out, sweep), sweep, search.seed)
        rows = trial_rows(study)
        front = pareto_rows(rows, axis)
        uniform_rows = (
            [
                uniform_point(out, ratio, trial, options, search, space, baseline, options.progress)
                for ratio, trial in uniform_sources(rows, front, sweep, axis)
            ]
            if sweep.uniform
            else []
        )
        write_csv(out / "trials.csv", rows)
        _log_trials(out, rows)
        write_csv(out / "pareto.csv", front)
        write_csv(out / "uniform.csv", uniform_rows)
        metrics = {
            "trials": sum(r["state"] in ("COMPLETE", "RUNNING") for r in rows),
            "complete": sum(r["state"] == "COMPLETE" for r in rows),
            "failed": sum(r["state"] == "FAIL" for r in rows),  # failed or interrupted
            "pareto_points": len(front),
            "full_acc": full_acc,
            "full_macs": space.macs(),
            "cost": search.cost,
            # the front is chosen on validation; its test accuracies are reported (hypervolumes
            # over the cost's ratio: MACs, or predicted latency)
            "hypervolume": hypervolume([(r[axis.ratio], r["searched_acc"]) for r in front]),
            "val_hypervolume": hypervolume([(r[axis.ratio], r[OBJECTIVE]) for r in front]),
            "uniform_hypervolume": hypervolume(
                [(u[axis.ratio], u["test_acc"]) for u in uniform_rows]
            ),
            "objectives": list(OBJECTIVES),
            "sampler": sweep.sampler,
            "study": sweep.study,
        }
        write_json(out / "metrics.json", metrics)
        plot_fronts([(out.name, out)], out / "pareto.png", cost=search.cost)
    return metrics


def _log_trials(out: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Under ``--tensorboard``: per complete trial, its validation accuracy and MAC ratio at its
    number (``tb/sweep``), and its validation accuracy at its MACs as the step (the accuracy/MAC
    cloud as one curve, ``tb/sweep_by_macs``: steps of another scale in a file of their own);
    every trial again each time the outputs are written (the purge keeps one of each)."""
    for r in rows:
        if r["state"] == "COMPLETE" and r.get(OBJECTIVE) is not None:
            values = {f"trials/{OBJECTIVE}": r[OBJECTIVE], "trials/macs_ratio": r["macs_ratio"]}
            tensorboard.log_scalars(out / "trials.csv", int(r["number"]), values)
            at_macs = {f"macs/{OBJECTIVE}": r[OBJECTIVE]}
            tensorboard.log_scalars(out / "sweep_by_macs" / "trials.csv", int(r["macs"]), at_macs)


def _cli(
    options: RunOptions, search: SearchConfig, sweep: SweepConfig, monitor: TensorBoardOptions
) -> int:
    with tensorboard.tensorboard_run(options.out_dir, monitor.tensorboard, name="sweep"):
        m = run_sweep(options, search, sweep)
    print(
        f"{m['complete']} trials, {m['pareto_points']} on the Pareto front, hypervolume "
        f"{m['hypervolume']:.4f} (uniform width {m['uniform_hypervolume']:.4f}) -> "
        f"{options.out_dir}"
    )
    return 0


COMMAND = Command(
    options=(RunOptions, SearchConfig, SweepConfig, TensorBoardOptions),
    run=_cli,
    description="Runs searches at many MAC (or, --cost latency, latency) budgets and "
    "hyper-parameters as one Optuna study "
    "sharing one baseline; re-running the same command resumes it and replaces failed or "
    "interrupted trials.",
    exclude=budget_options() | {"resume"},
    defaults={"out_dir": "runs/sweep"},
    config_file=True,
)
