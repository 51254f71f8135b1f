"""``nas sweep``: many searches as one Optuna study, and the accuracy/MAC Pareto front.

From Python (the same as the command line, with the same files)::

    from nas.search import SearchConfig
    from nas.sweep import SweepConfig, run_sweep
    from nas.workflows import RunOptions

    metrics = run_sweep(
        RunOptions(out_dir="runs/sweep", dataset="digits", baseline_epochs=30),
        SearchConfig(warmup_epochs=10, search_epochs=20, finetune_epochs=30),
        SweepConfig(trials=6, budgets=(0.25, 0.5, 0.75), seed=0),
    )
    print(metrics["pareto_points"], metrics["hypervolume"])

**Trials.** Each trial picks a MAC target (from ``macs_range`` or from the list of ``budgets``;
the first trials of a study take the listed budgets in order) and the search hyper-parameters
named in ``tune`` (budget-loss weight, initial temperature, architecture learning rate), runs
:func:`nas.workflows.run_search` into ``DIR/trials/trial-NNNN`` and reports two objectives: test
accuracy (maximised) and MACs (minimised).

**Sampling.** The sampler is passed explicitly (NSGA-II by default, TPE with ``sampler="tpe"``).
Each trial is drawn, under the sweep lock, by a sampler seeded with (``seed``, the number of
trials drawn before it): processes working on one study never draw the same knobs from the same
random state, and a sweep run by one process is reproducible from its seed. NSGA-II and TPE
keep nothing between trials but their random state (in Optuna 5.0 their populations,
generations and observations are read back from the storage), so a fresh sampler per trial
changes nothing else.

**Shared work.** The full baseline is trained once per sweep (``DIR/baseline``), and so is the
supernet's warm-up (``DIR/warmup.pt``, :func:`nas.search.warm_up`); every trial starts from
both. A trial whose parameters equal those of a finished trial of the same sweep options
(device included) reuses its result (``same_as``): the seeded search would repeat it. It is
listed in ``trials.csv`` but not again in ``pareto.csv`` (one row per distinct result).

**Uniform-width curve.** At each listed budget (with ``macs_range``: at each Pareto target,
rounded to 0.01) a network of uniform width and the same MACs is trained the same way as the
searched network there: it inherits from the same supernet (the search checkpoint of the best
completed trial at that target: baseline, then the warm-up and search epochs), its BN statistics
are recalibrated for its widths on training batches (:func:`nas.search.extract_at`), and it is
fine-tuned with that trial's options and the baseline as teacher. Cached in ``DIR/uniform``.

**Failures.** Optuna's pruners raise ``NotImplementedError`` in multi-objective studies, so no
trial is pruned. A trial that fails or is interrupted is marked FAIL (one left RUNNING by a
process that died is marked FAIL by the next process on that machine that asks for a trial);
FAIL trials do not count towards ``trials``. The process whose trial failed stops with its error
(one line for bad input); with ``workers > 1`` the other processes it started finish their
current trial and stop as well, while processes started separately go on and replace it.
Running the same sweep again replaces every failed or interrupted trial.

**Storage and several processes.** By default a journal file ``DIR/journal.log``; ``storage``
takes an Optuna RDB URL (PostgreSQL/MySQL; SQLite for one process at a time). Running the same
sweep again resumes it: finished trials are kept and only the missing ones run. Processes
cooperate through a file lock in the sweep directory (``DIR/.sweep.lock``): trials are created
under it, so together they run exactly ``trials`` trials. **Every process, on any machine, must
use the same sweep directory** (on a shared filesystem whose file locks work across machines,
e.g. NFSv4) as well as the same storage and study: the lock, the baseline, the warm-up and the
trial directories live there. A study records the options of its sweep (space, data, seed,
search and sweep options) and its directory when it is created; a process with other options,
or with another directory, is refused. SQLite allows one writer at a time: joining a SQLite
study while another live process runs one of its trials is refused (use the journal file or
PostgreSQL/MySQL for several processes).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import optuna
import torch
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

import search_spaces
from nas.data import DataBundle
from nas.errors import (
    ConfigError,
    DataError,
    NasError,
    SpaceError,
    SpecError,
    WeightsError,
    first_line,
)
from nas.extract import save_model
from nas.io import (
    atomic_write_text,
    check_writable,
    load_state_dict_file,
    read_csv,
    read_json,
    write_json,
    written_by,
)
from nas.plots import plot_pareto
from nas.search import (
    CALIBRATION_BATCHES,
    SearchConfig,
    extract_at,
    finetune,
    take_batches,
    warm_up,
)
from nas.train import TrainConfig, evaluate, seed_everything
from nas.workflows import (
    RunOptions,
    initial_weights,
    load_fitting,
    load_search_run,
    load_supernet,
    resolved_args,
    run_search,
    search_data,
    train_full,
    write_or_check_args,
)
from search_spaces import SearchSpace

if TYPE_CHECKING:
    from multiprocessing.queues import SimpleQueue
    from multiprocessing.synchronize import Event

__all__ = [
    "OBJECTIVES",
    "SAMPLERS",
    "TUNABLE",
    "SweepConfig",
    "hypervolume",
    "make_sampler",
    "pareto_rows",
    "read_csv",
    "run_sweep",
    "sweep_worker",
]

TUNABLE: dict[str, tuple[float, float]] = {  # log-uniform ranges of the tunable knobs
    "budget_weight": (0.5, 8.0),
    "tau0": (1.0, 10.0),
    "arch_lr": (0.005, 0.2),
}
SAMPLERS = ("nsga2", "tpe")
OBJECTIVES = ("test accuracy (maximise)", "MACs (minimise)")
DIRECTIONS: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
LOCK_FILE = ".sweep.lock"
STUDY_FILE = "study.json"  # in the sweep directory: which study (by its id) the sweep is
OPTIONS_ATTR = "nas_sweep_options"  # study user attribute: the options of the sweep
SWEEP_ID_ATTR = "nas_sweep_id"  # study user attribute: the id in DIR/study.json
KEY_ATTR = "options_key"  # trial user attribute: hash of the sweep options and the device


@dataclass
class SweepConfig:
    """What the study explores and where it is stored (see :mod:`nas.sweep`)."""

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
        """One-line :class:`ConfigError` for any value that cannot work."""
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
            twice = [b for i, b in enumerate(self.budgets) if b in self.budgets[:i]]
            if twice:
                raise ConfigError(f"--budgets lists {twice[0]:g} more than once")
            if self.trials < len(self.budgets):
                raise ConfigError(
                    f"--trials {self.trials} is fewer than the {len(self.budgets)} --budgets: "
                    "every budget needs a trial"
                )
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
        if self.workers > 1 and self.is_sqlite:
            raise ConfigError(
                "SQLite does not support several workers at once; use the "
                "default journal file, or PostgreSQL/MySQL for many machines"
            )

    @property
    def is_sqlite(self) -> bool:
        return bool(self.storage) and str(self.storage).startswith("sqlite")

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
def make_sampler(config: SweepConfig, draw: int | None = None) -> optuna.samplers.BaseSampler:
    """The seeded sampler of the sweep; with ``draw``, the one that draws trial ``draw``
    (seeded with ``config.seed`` and ``draw``: every trial has its own random state)."""
    seed = config.seed if draw is None else draw_seed(config.seed, draw)
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, config.trials // 2))


def draw_seed(seed: int, draw: int) -> int:
    """A 32-bit seed for the ``draw``-th trial of a sweep seeded with ``seed``."""
    digest = hashlib.sha256(f"channel-nas sweep {seed} {draw}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def storage_label(out: Path, config: SweepConfig) -> str:
    """The storage as it may be printed (an RDB URL without its password)."""
    if not config.storage:
        return str(out / "journal.log")
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(config.storage).render_as_string(hide_password=True))
    except Exception:  # not even a URL: shown as given
        return config.storage


def open_storage(out: Path, config: SweepConfig) -> BaseStorage:
    """The study's storage: the journal file in ``out`` (created) or the RDB of
    ``config.storage``; any failure to open it is a one-line :class:`ConfigError`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        if not config.storage:
            return JournalStorage(JournalFileBackend(str(out / "journal.log")))
        return optuna.storages.RDBStorage(config.storage)
    except Exception as exc:  # sqlalchemy, drivers and the filesystem raise many types
        raise ConfigError(
            f"cannot open --storage {storage_label(out, config)}: {first_line(exc)}"
        ) from None


def find_study(
    storage: BaseStorage, config: SweepConfig, draw: int | None = None
) -> optuna.Study | None:
    """The sweep's study in ``storage`` (None if there is none), its sampler the one of
    trial ``draw`` (:func:`make_sampler`)."""
    try:
        return optuna.load_study(
            study_name=config.study, storage=storage, sampler=make_sampler(config, draw)
        )
    except KeyError:
        return None
    except Exception as exc:  # a storage that opened but cannot be read
        raise ConfigError(
            f"cannot read study {config.study!r} from the storage: {first_line(exc)}"
        ) from None


def load_sweep_study(
    storage: BaseStorage, config: SweepConfig, draw: int | None = None
) -> optuna.Study:
    study = find_study(storage, config, draw)
    if study is None:
        raise ConfigError(f"no study {config.study!r} in the storage (run nas sweep to make it)")
    return study


def sweep_options(
    options: RunOptions, search: SearchConfig, sweep: SweepConfig, data: dict[str, Any]
) -> dict[str, Any]:
    """What every process of one sweep must share (the fingerprint a study records): the
    space, the data and how it is served, the baseline, the search options and the sweep's,
    without what may differ between its processes (device, paths, storage URL, number of trials
    and workers). As stored in a study (JSON)."""
    record = config_record(sweep)
    fingerprint = {
        "space": options.space,
        "dataset": options.dataset,
        "image_size": options.image_size,
        "val_fraction": options.val_fraction,
        "batch_size": options.batch_size,
        "augment": options.augment,
        "baseline_epochs": options.baseline_epochs,
        "baseline_lr": options.baseline_lr,
        "data": data,
        "search": {k: v for k, v in asdict(search).items() if k != "device"},
        "sweep": {
            k: v
            for k, v in record.items()
            if k not in (*SWEEP_VOLATILE, "storage", "study", "workers")
        },
    }
    normalised: dict[str, Any] = json.loads(json.dumps(fingerprint))
    return normalised


def _differences(stored: Any, mine: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(mine, dict):
        keys = [*stored, *(k for k in mine if k not in stored)]
        return [d for k in keys for d in _differences(stored.get(k), mine.get(k), f"{prefix}{k}.")]
    return [] if stored == mine else [prefix.rstrip(".")]


def options_key(study: optuna.Study, device: str) -> str:
    """Hash of the study's sweep options and the device: trials with equal parameters and
    equal keys have equal results (see :func:`finished_twin`)."""
    record = {"options": study.user_attrs.get(OPTIONS_ATTR), "device": device}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def _check_joinable(
    study: optuna.Study, out: Path, fingerprint: dict[str, Any], config: SweepConfig
) -> None:
    """Refuse to work on a study of another sweep: another directory, other options, or
    (SQLite) another live process."""
    name = f"study {config.study!r} in {storage_label(out, config)}"
    if [d.name.lower() for d in study.directions] != DIRECTIONS:
        raise ConfigError(f"{name} was not made by nas sweep (other objectives)")
    stored_id = study.user_attrs.get(SWEEP_ID_ATTR)
    if stored_id is None:
        raise ConfigError(
            f"{name} records no sweep options (not made by this version of nas sweep); choose "
            "another --study"
        )
    if _read_study_file(out).get("sweep_id") != stored_id:
        raise ConfigError(
            f"{name} belongs to another sweep directory, not {out}: every process must use the "
            "sweep directory of the study (share it between machines), or choose another --study"
        )
    stored = study.user_attrs.get(OPTIONS_ATTR)
    if stored != fingerprint:
        diff = _differences(stored, fingerprint) if isinstance(stored, dict) else ["all"]
        raise ConfigError(
            f"{name} was made with other options ({', '.join(diff[:4])}): run it with the "
            "options it was made with, or choose another --study and --out"
        )
    if config.is_sqlite:
        _check_sqlite_alone(study, config)


def _read_study_file(out: Path) -> dict[str, Any]:
    path = out / STUDY_FILE
    return read_json(path, "sweep study file") if path.is_file() else {}


def _create_study(
    storage: BaseStorage, out: Path, config: SweepConfig, fingerprint: dict[str, Any]
) -> optuna.Study:
    """A new study recording the sweep's options and directory; with ``budgets``, its first
    trials take the listed budgets in order (the sampler draws their other knobs)."""
    try:
        study = optuna.create_study(
            study_name=config.study,
            storage=storage,
            sampler=make_sampler(config, 0),
            directions=DIRECTIONS,
        )
    except optuna.exceptions.DuplicatedStudyError:  # made meanwhile without our lock
        raise ConfigError(
            f"study {config.study!r} in {storage_label(out, config)} was just made by a process "
            "using another sweep directory; every process must use the same one"
        ) from None
    sweep_id = uuid.uuid4().hex
    study.set_user_attr(OPTIONS_ATTR, fingerprint)
    study.set_user_attr(SWEEP_ID_ATTR, sweep_id)
    write_json(out / STUDY_FILE, {"study": config.study, "sweep_id": sweep_id})
    cover_budgets(study, config)
    return study


def cover_budgets(study: optuna.Study, config: SweepConfig) -> None:
    """With ``--budgets``, a new study's first trials take the listed budgets in order, one
    each (the sampler draws their other knobs), so every budget is searched; the sampler
    chooses the budgets of the later trials. Call under :func:`sweep_lock`."""
    if config.budgets is None or study.get_trials(deepcopy=False):
        return
    for budget in config.budgets:
        study.enqueue_trial({"target_macs": budget})


@contextlib.contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """An exclusive lock shared by every process working on this sweep directory (creates the
    directory). A lock file removed while we waited for it (a refused new sweep removes its
    directory) is taken again."""
    while True:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / LOCK_FILE, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                try:
                    current = os.path.samestat(os.fstat(f.fileno()), os.stat(out / LOCK_FILE))
                except FileNotFoundError:
                    current = False
                if current:
                    yield
                    return
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


def _check_sqlite_alone(study: optuna.Study, config: SweepConfig) -> None:
    """SQLite takes one writer at a time: refuse to work beside another live process (a
    RUNNING trial of another process, on another machine or alive on this one)."""
    host, pid = socket.gethostname(), os.getpid()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        t_host, t_pid = t.user_attrs.get("host"), int(t.user_attrs.get("pid", -1))
        if t_host != host or (t_pid != pid and _alive(t_pid)):
            raise ConfigError(
                f"study {config.study!r} in {config.storage} is in use: trial {t.number} runs in "
                f"process {t_pid} on {t_host}; SQLite serves one process at a time (wait for it, "
                "or use the default journal file or PostgreSQL/MySQL for several processes)"
            )


def draws(study: optuna.Study) -> int:
    """Trials drawn so far (all but those waiting in the queue)."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING)


def next_trial(
    storage: BaseStorage, out: Path, config: SweepConfig, key: str = ""
) -> optuna.Trial | None:
    """A new trial, or None once the study has its ``trials`` (checked under the lock). Its
    study handle (``trial.study``) has a sampler seeded for this draw (:func:`make_sampler`)."""
    with sweep_lock(out):
        study = load_sweep_study(storage, config)
        fail_orphans(study)
        if counted(study) >= config.trials:
            return None
        if config.is_sqlite:
            _check_sqlite_alone(study, config)
        study = load_sweep_study(storage, config, draws(study))
        trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr(KEY_ATTR, key)
        return trial


# -- tables ----------------------------------------------------------------------------------------
def finished_twin(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial | None:
    """A complete trial with exactly ``trial``'s parameters and options key (same sweep
    options, same device): the seeded search would repeat its result, so the sweep reuses it."""
    key = trial.user_attrs.get(KEY_ATTR)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if (
            t.number != trial.number
            and t.params == trial.params
            and t.user_attrs.get(KEY_ATTR) == key
        ):
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
    """Completed trials that no other completed trial dominates (accuracy up, MACs down), by
    increasing MACs. A trial that reused another's result (``same_as``) is that result again:
    it is left out, so every row is a distinct network."""
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("same_as") in (None, "")]
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
        (ratio, min(trials, key=lambda r: (-r["searched_acc"], r["number"])))
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
    sweep.validate()
    search.validate()
    if options.overwrite:
        raise ConfigError(
            "nas sweep does not overwrite: running it again resumes the sweep in --out; to start "
            "over, delete that directory or choose another --out"
        )
    out = Path(options.out_dir)
    _check_out_dir(out)
    search_spaces.get_entry(options.space)
    data, space = search_data(options, search.seed)
    for budget in sweep.budgets or sweep.macs_range or ():
        replace(search, target_macs=str(budget)).target_for(space)
    initial = initial_weights(options.weights, space)
    record = config_record(sweep) | {
        "storage": storage_label(out, sweep) if sweep.storage else None
    }
    resolved = (
        resolved_args(options, search, data.describe())
        | {
            "command": "sweep",
            "sweep": {k: v for k, v in record.items() if k not in SWEEP_VOLATILE},
            "uniform": uniform,
        }
        | {k: record[k] for k in SWEEP_VOLATILE}
    )
    fingerprint = sweep_options(options, search, sweep, data.describe())
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
    _run_workers(options, search, sweep, out)
    return _sweep_outputs(out, baseline, space, data, options, search, sweep, uniform)


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
    study = find_study(storage, sweep)
    if study is not None:
        _check_joinable(study, out, fingerprint, sweep)
        fail_orphans(study)
    elif (out / STUDY_FILE).is_file():
        raise ConfigError(
            f"the study {sweep.study!r} of {out} is not in {storage_label(out, sweep)} "
            "(was it deleted, or is this another storage?)"
        )
    write_or_check_args(out, resolved, resume=True, volatile=(*SWEEP_VOLATILE, "uniform"))
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
        _create_study(storage, out, sweep, fingerprint)
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


# errors a worker process sends back by name (they are re-raised in the main process)
_ERRORS: dict[str, type[NasError]] = {
    cls.__name__: cls for cls in (ConfigError, DataError, WeightsError, SpaceError, SpecError)
}


def _run_workers(options: RunOptions, search: SearchConfig, sweep: SweepConfig, out: Path) -> None:
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
    study = load_sweep_study(storage, sweep)
    key = options_key(study, search.device)
    weights = str(out / "baseline" / "model.pt")
    with progress_bar(sweep.trials, counted(study), progress) as bar:
        while not (stop is not None and stop.is_set()):
            trial = next_trial(storage, out, sweep, key)
            if trial is None:
                break
            try:
                config = sweep.suggest(trial, search)
                twin = finished_twin(trial.study, trial)
                if twin is not None:  # a seeded search repeats its result: not run again
                    attrs = {k: twin.user_attrs[k] for k in (*TRIAL_METRICS, "run_dir")}
                    attrs |= {"seconds": 0.0, "same_as": twin.number}
                else:
                    attrs = _run_trial(options, search, config, out, trial, weights)
                for name, value in attrs.items():
                    trial.set_user_attr(name, value)
                trial.study.tell(trial, [attrs["searched_acc"], attrs["macs"]])
            except BaseException:
                with contextlib.suppress(Exception):
                    trial.study.tell(trial, state=TrialState.FAIL)
                raise
            bar.n = counted(trial.study)
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
    metrics, seconds = timed(run_search, trial_options, config, warmup=warmup)
    return {k: metrics[k] for k in TRIAL_METRICS} | {
        "seconds": round(seconds, 2),
        "run_dir": str(run_dir.relative_to(out)),
    }


def _sweep_outputs(
    out: Path,
    baseline: torch.nn.Module,
    space: SearchSpace,
    data: DataBundle,
    options: RunOptions,
    search: SearchConfig,
    sweep: SweepConfig,
    uniform: bool,
) -> dict[str, Any]:
    """The tables, metrics and figure, from the study as it is now. The reading, the
    uniform-width networks and the writing all happen under the lock, so the last process
    to finish writes the newest outputs and a uniform network is trained once."""
    full_acc = evaluate(baseline, data.test, device=search.device).accuracy
    with sweep_lock(out):
        study = load_sweep_study(open_storage(out, sweep), sweep)
        rows = trial_rows(study)
        front = pareto_rows(rows)
        uniform_rows = (
            [
                uniform_point(out, ratio, trial, options, search, space, baseline, options.progress)
                for ratio, trial in uniform_sources(rows, front, sweep)
            ]
            if uniform
            else []
        )
        write_csv(out / "trials.csv", rows)
        write_csv(out / "pareto.csv", front)
        write_csv(out / "uniform.csv", uniform_rows)
        metrics = {
            "trials": len(rows),
            "complete": sum(r["state"] == "COMPLETE" for r in rows),
            "pareto_points": len(front),
            "full_acc": full_acc,
            "full_macs": space.macs(),
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
