"""Sweep workers: processes that draw trials and run each trial's search until the study has
its trials."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from nas.errors import (
    ConfigError,
    DataError,
    NasError,
    SpaceError,
    SpecError,
    WeightsError,
    WriteError,
)
from nas.rundir import written_by
from nas.runs import RunOptions
from nas.sweep.config import AXES, SweepConfig
from nas.sweep.lock import RETRY_ATTR, heartbeat, retry, sweep_lock
from nas.sweep.pareto import LATENCY_METRICS, OBJECTIVE, TRIAL_METRICS, trial_metrics
from nas.sweep.study import (
    counted,
    finished_twin,
    load_sweep_study,
    next_trial,
    open_storage,
    options_key,
)
from nas.width_search import SearchConfig, run_search
from search_spaces import WidthSpec

if TYPE_CHECKING:
    from multiprocessing.queues import SimpleQueue
    from multiprocessing.synchronize import Event

__all__ = ["SWEEP_WARMUP", "run_workers", "sweep_worker"]

SWEEP_WARMUP = "warmup.pt"  # in the sweep directory: the warm-up every trial starts from


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


def progress_bar(total: int, done: int, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=done,
        desc="sweep",
        unit="trial",
        disable=not enabled,
        dynamic_ncols=True,
    )


# errors a worker process sends back by name (they are re-raised in the main process)
_ERRORS: dict[str, type[NasError]] = {
    cls.__name__: cls
    for cls in (ConfigError, DataError, WeightsError, SpaceError, SpecError, WriteError)
}


def run_workers(options: RunOptions, search: SearchConfig, sweep: SweepConfig, out: Path) -> None:
    """This process and ``workers - 1`` more run trials until the study has enough. When one
    of them stops on an error, the others finish their current trial and stop too; the first
    error is raised here (a helper's bad-input error as the same one-line error)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    errors: SimpleQueue[tuple[str, str]] = ctx.SimpleQueue()
    quiet = replace(options, progress=False)
    helpers = [
        ctx.Process(target=_helper, args=(quiet, search, sweep, stop, errors))
        for _ in range(sweep.workers - 1)
    ]
    for p in helpers:
        p.start()
    try:
        sweep_worker(options, search, sweep, options.progress, stop=stop)
    except BaseException:
        stop.set()
        raise
    finally:
        for p in helpers:
            p.join()
    if not errors.empty():
        name, message = errors.get()
        raise _ERRORS.get(name, ConfigError)(message)
    failed = [p.exitcode for p in helpers if p.exitcode]
    if failed:
        raise RuntimeError(
            f"{len(failed)} sweep worker process(es) died (exit code {failed[0]}); run the "
            "sweep again to replace their trials"
        )


def _helper(
    options: RunOptions,
    search: SearchConfig,
    sweep: SweepConfig,
    stop: Event,
    errors: SimpleQueue[tuple[str, str]],
) -> None:
    """A ``--workers`` process: :func:`sweep_worker`; a bad-input error goes back to the main
    process (which reports it in one line) and ends this one with exit code 2, no traceback."""
    try:
        sweep_worker(options, search, sweep, False, stop=stop)
    except NasError as exc:
        stop.set()
        errors.put((type(exc).__name__, str(exc)))
        sys.exit(2)
    except KeyboardInterrupt:
        stop.set()
        sys.exit(130)
    except BaseException:
        stop.set()
        raise


def sweep_worker(
    options: RunOptions,
    search: SearchConfig,
    sweep: SweepConfig,
    progress: bool,
    *,
    stop: Event | None = None,
) -> None:
    """Run trials of the study in ``options.out_dir`` until it has ``sweep.trials`` (or
    ``stop`` is set). The study must exist (:func:`run_sweep` makes it and checks the options);
    a trial that fails is marked FAIL and its error raised."""
    out = Path(options.out_dir)
    storage = open_storage(out, sweep)
    study = load_sweep_study(storage, sweep, search.seed)
    key = options_key(study, search.device)
    weights = str(out / "baseline" / "model.pt")
    axis = AXES[search.cost]
    with progress_bar(sweep.trials, counted(study), progress) as bar:
        while not (stop is not None and stop.is_set()):
            trial = next_trial(storage, out, sweep, search.seed, key)
            if trial is None:
                break
            try:
                with heartbeat(trial, sweep.heartbeat):
                    config = sweep.suggest(trial, search)
                    twin = finished_twin(trial.study, trial)
                    if twin is not None:  # a seeded search repeats its result: not run again
                        kept = (*TRIAL_METRICS, *LATENCY_METRICS, "run_dir", "widths")
                        attrs = {k: twin.user_attrs[k] for k in kept if k in twin.user_attrs}
                        attrs |= {"seconds": 0.0, "same_as": twin.number}
                    else:
                        attrs = _run_trial(options, search, config, out, trial, weights)
                    for name, value in attrs.items():
                        trial.set_user_attr(name, value)
                    trial.study.tell(trial, [attrs[OBJECTIVE], attrs[axis.value]])
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    trial.study.tell(trial, state=TrialState.FAIL)
                    if not isinstance(exc, Exception):  # interrupted (Ctrl-C), not an error
                        with sweep_lock(out):
                            retry(trial.study, trial)
                raise
            bar.n = counted(trial.study)
            bar.set_postfix(
                val_acc=f"{attrs[OBJECTIVE]:.2f}", cost=f"{attrs[axis.ratio]:.2f}", refresh=True
            )


def _run_trial(
    options: RunOptions,
    search: SearchConfig,
    config: SearchConfig,
    out: Path,
    trial: optuna.Trial,
    weights: str,
) -> dict[str, Any]:
    """One trial's search in ``DIR/trials/trial-NNNN``; what the trial records of it."""
    # a retry of an interrupted trial continues in that trial's directory
    run_dir = out / "trials" / f"trial-{trial.user_attrs.get(RETRY_ATTR, trial.number):04d}"
    resume = written_by(run_dir) == "search"  # a trial's search goes on where it stopped
    if RETRY_ATTR in trial.user_attrs and not resume:
        # its worker died before the search recorded itself (args.yaml): what it left there
        # (a half-written temporary file) is the sweep's own, and the trial starts anew
        shutil.rmtree(run_dir, ignore_errors=True)
    trial_options = replace(
        options,
        out_dir=str(run_dir),
        weights=weights,
        resume=resume,
        threads=None if resume else options.threads,  # a resumed trial keeps its thread count
        overwrite=False,
        progress=False,
    )
    warmup = out / SWEEP_WARMUP if search.warmup_epochs else None
    metrics, seconds = timed(run_search, trial_options, config, warmup=warmup)
    arch = run_dir / "arch.json"  # (a conditional network's widths change per image: none)
    widths = dict(WidthSpec.load(arch).widths) if metrics.get("conditional") is not True else None
    return trial_metrics(metrics) | {
        "seconds": round(seconds, 2),
        "run_dir": str(run_dir.relative_to(out)),
        "widths": widths,
    }
