"""``nas sweep``: many searches as one Optuna study, and the accuracy/MAC Pareto front.

Each trial picks a MAC target (from ``macs_range`` or from a list of ``budgets``) and the search
hyper-parameters named in ``tune`` (budget-loss weight, initial temperature, architecture
learning rate), runs :func:`nas.workflows.run_search` into ``DIR/trials/trial-NNNN`` and reports
two objectives: test accuracy (maximised) and MACs (minimised). The sampler is passed explicitly
and seeded (NSGA-II by default, TPE with ``sampler="tpe"``).

Shared work: the full baseline is trained once per sweep (``DIR/baseline``), and so is the
supernet's warm-up (``DIR/warmup.pt``, :func:`nas.search.warm_up`); every trial starts from both,
so a sweep of N budgets costs them once instead of N times, with the results of N searches alone.

Early stopping: Optuna's pruners raise ``NotImplementedError`` in multi-objective studies, so no
trial is pruned. A trial is short (it inherits the baseline) and its search already stops at the
budget; a failed trial is marked FAIL and replaced.

Storage: by default a journal file ``DIR/journal.log`` (safe for several processes on one
machine); ``storage`` takes any Optuna storage URL (PostgreSQL/MySQL for many machines). Running
the same sweep again resumes it: finished trials are kept and only the missing ones run. Several
processes started with the same storage and study cooperate: trials are created under a lock
(a file lock in the sweep directory), so together they run exactly ``trials`` trials.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

import search_spaces
from nas.data import DataBundle
from nas.errors import ConfigError
from nas.extract import load_model, save_model
from nas.io import atomic_write_text, load_state_dict_file, write_json
from nas.plots import plot_pareto
from nas.search import SearchConfig, finetune, warm_up
from nas.train import TrainConfig, evaluate, seed_everything
from nas.workflows import (
    RunOptions,
    initial_weights,
    load_fitting,
    resolved_args,
    run_search,
    train_full,
    write_or_check_args,
)
from search_spaces import SearchSpace

TUNABLE: dict[str, tuple[float, float]] = {  # log-uniform ranges of the tunable knobs
    "budget_weight": (0.5, 8.0),
    "tau0": (1.0, 10.0),
    "arch_lr": (0.005, 0.2),
}
SAMPLERS = ("nsga2", "tpe")
OBJECTIVES = ("test accuracy (maximise)", "MACs (minimise)")


@dataclass
class SweepConfig:
    """What the study explores and where it is stored."""

    trials: int = 6
    macs_range: tuple[float, float] | None = (0.2, 0.9)
    budgets: tuple[float, ...] | None = None  # overrides macs_range
    tune: tuple[str, ...] = ("budget_weight", "tau0", "arch_lr")
    sampler: str = "nsga2"
    storage: str | None = None  # default: journal file in the sweep directory
    study: str = "channel-nas"
    workers: int = 1  # processes this command starts
    seed: int = 0

    def validate(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose nsga2 or tpe")
        unknown = [t for t in self.tune if t not in TUNABLE]
        if unknown:
            raise ConfigError(f"cannot tune {', '.join(unknown)}; choose from {', '.join(TUNABLE)}")
        if self.budgets is not None:
            if not self.budgets:
                raise ConfigError("--budgets is empty")
            bad = [b for b in self.budgets if not 0 < b <= 1]
            if bad:
                raise ConfigError(f"budgets must be in (0, 1], got {bad[0]}")
        elif self.macs_range is not None:
            lo, hi = self.macs_range
            if not 0 < lo < hi <= 1:
                raise ConfigError(
                    f"--macs-range must be LO,HI with 0 < LO < HI <= 1, got {lo},{hi}"
                )
        else:
            raise ConfigError("give --macs-range or --budgets")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.workers > 1 and self.storage and self.storage.startswith("sqlite"):
            raise ConfigError(
                "SQLite does not support several workers at once; use the "
                "default journal file, or PostgreSQL/MySQL for many machines"
            )

    def suggest(self, trial: optuna.Trial, base: SearchConfig) -> SearchConfig:
        """The search configuration of one trial."""
        if self.budgets is not None:
            target = float(trial.suggest_categorical("target_macs", list(self.budgets)))
        else:
            assert self.macs_range is not None
            target = trial.suggest_float("target_macs", *self.macs_range)
        values: dict[str, Any] = {"target_macs": f"{target:.6g}", "seed": base.seed}
        for name in self.tune:
            lo, hi = TUNABLE[name]
            values[name] = trial.suggest_float(name, lo, hi, log=True)
        return replace(base, **values)


# -- the study -------------------------------------------------------------------------------------
def make_sampler(config: SweepConfig) -> optuna.samplers.BaseSampler:
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=config.seed, multivariate=True)
    return optuna.samplers.NSGAIISampler(
        seed=config.seed, population_size=max(4, config.trials // 2)
    )


def open_study(out: Path, config: SweepConfig) -> optuna.Study:
    """Create or load the study (same storage and name = the same sweep)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage: Any = config.storage or JournalStorage(JournalFileBackend(str(out / "journal.log")))
    try:
        return optuna.create_study(
            study_name=config.study,
            storage=storage,
            sampler=make_sampler(config),
            directions=["maximize", "minimize"],
            load_if_exists=True,
        )
    except (ValueError, ImportError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot open storage {config.storage or out / 'journal.log'}: "
            f"{str(exc).splitlines()[0]}"
        ) from None


def cover_budgets(study: optuna.Study, config: SweepConfig) -> None:
    """With ``--budgets``, a new study's first trials take the listed budgets in order, one
    each (the sampler draws their other knobs), so every budget is searched; the sampler
    chooses the budgets of the later trials. Call under :func:`sweep_lock`."""
    if config.budgets is None or study.get_trials(deepcopy=False):
        return
    for budget in config.budgets[: config.trials]:
        study.enqueue_trial({"target_macs": budget})


@contextlib.contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """An exclusive lock shared by every process working on this sweep directory."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".sweep.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def counted(study: optuna.Study) -> int:
    """Trials that count towards the total: finished, or running in a live process."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.RUNNING)
    )


def fail_orphans(study: optuna.Study) -> None:
    """Mark RUNNING trials whose process on this machine has died as FAIL (they will be
    replaced), so an interrupted sweep resumes to the full number of trials."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("host") == host and not _alive(int(t.user_attrs.get("pid", -1))):
            study.tell(t.number, state=TrialState.FAIL)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def next_trial(study: optuna.Study, out: Path, config: SweepConfig) -> optuna.Trial | None:
    """A new trial, or None once the study has its ``trials`` (checked under the lock)."""
    with sweep_lock(out):
        fail_orphans(study)
        if counted(study) >= config.trials:
            return None
        trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        return trial


# -- tables ----------------------------------------------------------------------------------------
def finished_twin(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial | None:
    """A complete trial with exactly ``trial``'s parameters (samplers such as NSGA-II can
    propose one again): the seeded search would repeat its result, so the sweep reuses it."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number != trial.number and t.params == trial.params:
            return t
    return None


# what a trial records of its run's metrics.json (as user attributes, and in trials.csv)
TRIAL_METRICS = ("searched_acc", "macs", "macs_ratio", "params", "baseline_acc", "relaxation_gap")


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        row |= {k: v for k, v in t.params.items()}
        row |= {k: t.user_attrs.get(k) for k in (*TRIAL_METRICS, "seconds", "run_dir", "same_as")}
        rows.append(row)
    return rows


def pareto_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Completed trials that no other completed trial dominates (accuracy up, MACs down)."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    front = [r for r in done if not any(_dominates(o, r) for o in done)]
    return sorted(front, key=lambda r: r["macs"])


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    better_or_equal = a["searched_acc"] >= b["searched_acc"] and a["macs"] <= b["macs"]
    strictly = a["searched_acc"] > b["searched_acc"] or a["macs"] < b["macs"]
    return better_or_equal and strictly


def hypervolume(points: Sequence[tuple[float, float]], ref_ratio: float = 1.0) -> float:
    """Area dominated by (MAC ratio, accuracy/100) points against the reference (ref_ratio, 0):
    in [0, 1] when every MAC ratio is at most 1; larger is better."""
    pts = sorted((m, a / 100.0) for m, a in points if m <= ref_ratio)
    area, best = 0.0, 0.0
    for i, (m, acc) in enumerate(pts):
        best = max(best, acc)
        right = pts[i + 1][0] if i + 1 < len(pts) else ref_ratio
        area += best * (right - m)
    return area


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# -- uniform-width baseline curve -----------------------------------------------------------------
def uniform_point(
    out: Path, ratio: float, baseline_dir: Path, data: Any, config: SearchConfig, progress: bool
) -> dict[str, Any]:
    """A uniform-width network at ``ratio`` of the MACs, extracted from the baseline and
    fine-tuned exactly like the trials (cached in ``DIR/uniform``)."""
    from nas.extract import channel_order, extract

    d = out / "uniform" / f"macs-{ratio:.4f}"
    if (d / "metrics.json").is_file():
        import json

        return dict(json.loads((d / "metrics.json").read_text()))
    full = load_model(baseline_dir)
    space = space_of(baseline_dir)
    spec = space.spec(space.uniform_widths_for_macs(ratio))
    seed_everything(config.seed)
    small = extract(full, spec, channel_order(full, space, config.order))
    finetune(small, full, data.train, data.val, config=config, progress=progress)
    point = {
        "target": ratio,
        "macs": spec.macs(),
        "macs_ratio": spec.macs_ratio(),
        "params": spec.params(),
        "test_acc": evaluate(small, data.test, device=config.device).accuracy,
    }
    save_model(small, spec, d, torchscript=False)
    write_json(d / "metrics.json", point)
    return point


def space_of(model_dir: Path) -> Any:
    from search_spaces import WidthSpec

    return WidthSpec.load(model_dir / "arch.json").get_space()


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


def config_record(config: SweepConfig) -> dict[str, Any]:
    record = asdict(config)
    for key in ("macs_range", "budgets", "tune"):
        if record[key] is not None:
            record[key] = list(record[key])
    return record


# -- nas sweep -----------------------------------------------------------------------------------
SWEEP_VOLATILE = ("trials", "workers")  # may change when a sweep is run again
SWEEP_WARMUP = "warmup.pt"  # in the sweep directory: the warm-up every trial starts from


def run_sweep(
    options: RunOptions, search: SearchConfig, sweep: SweepConfig, *, uniform: bool = True
) -> dict[str, Any]:
    """``nas sweep``: an Optuna study of searches sharing one baseline (see :mod:`nas.sweep`).

    Writes into ``options.out_dir``: ``trials.csv``, ``pareto.csv``, ``uniform.csv``,
    ``pareto.png``, ``metrics.json`` (hypervolume), ``args.yaml``, ``baseline/``,
    ``trials/trial-NNNN/`` (each a ``nas search`` run directory with its extracted model) and,
    with the default storage, ``journal.log``. Re-running the same command resumes.
    """
    sweep.validate()
    search.validate()
    out = Path(options.out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path exists and is not a directory: {out}")
    search_spaces.get_entry(options.space)
    data = options.load(search.seed)
    space = search_spaces.create(
        options.space,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    for budget in sweep.budgets or sweep.macs_range or ():
        replace(search, target_macs=str(budget)).target_for(space)
    initial = initial_weights(options.weights, space)
    record = config_record(sweep)
    resolved = (
        resolved_args(options, search, data.describe())
        | {
            "command": "sweep",
            "sweep": {k: v for k, v in record.items() if k not in SWEEP_VOLATILE},
            "uniform": uniform,
        }
        | {k: record[k] for k in SWEEP_VOLATILE}
    )
    with sweep_lock(out):
        write_or_check_args(out, resolved, resume=True, volatile=(*SWEEP_VOLATILE, "uniform"))
        base_config = TrainConfig(
            epochs=options.baseline_epochs,
            lr=options.baseline_lr,
            seed=search.seed,
            device=search.device,
        )
        baseline = train_full(
            space,
            data,
            initial,
            base_config,
            out / "baseline",
            resume=True,
            progress=options.progress,
        )
        if search.warmup_epochs:
            _shared_warmup(options, search, space, out)
        cover_budgets(open_study(out, sweep), sweep)
    study = open_study(out, sweep)
    _run_workers(options, search, sweep, out)
    return _sweep_outputs(study, out, baseline, data, search, sweep, uniform, options.progress)


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


def _run_workers(options: RunOptions, search: SearchConfig, sweep: SweepConfig, out: Path) -> None:
    """This process and ``workers - 1`` more run trials until the study has enough."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    quiet = replace(options, progress=False)
    helpers = [
        ctx.Process(target=sweep_worker, args=(quiet, search, sweep, False))
        for _ in range(sweep.workers - 1)
    ]
    for p in helpers:
        p.start()
    try:
        sweep_worker(options, search, sweep, options.progress)
    finally:
        for p in helpers:
            p.join()
    failed = [p.exitcode for p in helpers if p.exitcode]
    if failed:
        raise ConfigError(f"{len(failed)} sweep worker(s) failed (exit code {failed[0]})")


def sweep_worker(
    options: RunOptions, search: SearchConfig, sweep: SweepConfig, progress: bool
) -> None:
    """Run trials of the study in ``options.out_dir`` until it has ``sweep.trials``."""
    out = Path(options.out_dir)
    study = open_study(out, sweep)
    weights = str(out / "baseline" / "model.pt")
    with progress_bar(sweep.trials, counted(study), progress) as bar:
        while (trial := next_trial(study, out, sweep)) is not None:
            config = sweep.suggest(trial, search)
            twin = finished_twin(study, trial)
            if twin is not None:  # a seeded search repeats its result: not run again
                attrs = {k: twin.user_attrs[k] for k in (*TRIAL_METRICS, "run_dir")}
                attrs |= {"seconds": 0.0, "same_as": twin.number}
            else:
                attrs = _run_trial(options, search, config, out, trial, weights)
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            study.tell(trial, [attrs["searched_acc"], attrs["macs"]])
            bar.n = counted(study)
            bar.set_postfix(
                acc=f"{attrs['searched_acc']:.2f}", macs=f"{attrs['macs_ratio']:.2f}", refresh=True
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
    run_dir = out / "trials" / f"trial-{trial.number:04d}"
    trial_options = replace(
        options,
        out_dir=str(run_dir),
        weights=weights,
        resume=True,
        overwrite=False,
        progress=False,
    )
    warmup = out / SWEEP_WARMUP if search.warmup_epochs else None
    try:
        metrics, seconds = timed(run_search, trial_options, config, warmup=warmup)
    except BaseException:
        trial.study.tell(trial, state=TrialState.FAIL)
        raise
    return {k: metrics[k] for k in TRIAL_METRICS} | {
        "seconds": round(seconds, 2),
        "run_dir": str(run_dir.relative_to(out)),
    }


def _sweep_outputs(
    study: optuna.Study,
    out: Path,
    baseline: torch.nn.Module,
    data: DataBundle,
    search: SearchConfig,
    sweep: SweepConfig,
    uniform: bool,
    progress: bool,
) -> dict[str, Any]:
    rows = trial_rows(study)
    front = pareto_rows(rows)
    full_acc = evaluate(baseline, data.test, device=search.device).accuracy
    targets = sorted(
        {float(b) for b in sweep.budgets}
        if sweep.budgets
        else {round(float(r["target_macs"]), 2) for r in front}
    )
    uniform_rows = (
        [uniform_point(out, t, out / "baseline", data, search, progress) for t in targets]
        if uniform
        else []
    )
    with sweep_lock(out):
        write_csv(out / "trials.csv", rows)
        write_csv(out / "pareto.csv", front)
        write_csv(out / "uniform.csv", uniform_rows)
        metrics = {
            "trials": len(rows),
            "complete": sum(r["state"] == "COMPLETE" for r in rows),
            "pareto_points": len(front),
            "full_acc": full_acc,
            "full_macs": space_of(out / "baseline").macs(),
            "hypervolume": hypervolume([(r["macs_ratio"], r["searched_acc"]) for r in front]),
            "uniform_hypervolume": hypervolume(
                [(u["macs_ratio"], u["test_acc"]) for u in uniform_rows]
            ),
            "objectives": list(OBJECTIVES),
            "sampler": sweep.sampler,
            "study": sweep.study,
        }
        write_json(out / "metrics.json", metrics)
        plot_pareto([(out.name, out)], out / "pareto.png")
    return metrics
