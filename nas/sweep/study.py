"""The Optuna study of a sweep: storage, sampler, the options it records, drawing trials."""

from __future__ import annotations

import hashlib
import json
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import optuna
from optuna.storages import BaseStorage
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from nas.errors import ConfigError, first_line
from nas.io import read_json, write_json
from nas.options import LOCAL, VOLATILE, Options, record, tagged
from nas.sweep.config import SweepConfig
from nas.sweep.lock import RETRY_ATTR, check_sqlite_alone, fail_orphans, mark_owner, sweep_lock

if TYPE_CHECKING:
    from nas.runs import RunOptions
    from nas.width_search import SearchConfig

__all__ = [
    "DIRECTIONS",
    "OBJECTIVES",
    "check_joinable",
    "counted",
    "create_study",
    "find_study",
    "finished_twin",
    "load_sweep_study",
    "make_sampler",
    "next_trial",
    "open_storage",
    "options_key",
    "storage_label",
    "sweep_options",
]

OBJECTIVES = (
    "validation accuracy of the delivered network (maximise; test accuracy is only reported)",
    "MACs (minimise)",
)
DIRECTIONS: list[Literal["maximize", "minimize"]] = ["maximize", "minimize"]
STUDY_FILE = "study.json"  # in the sweep directory: which study (by its id) the sweep is
OPTIONS_ATTR = "nas_sweep_options"  # study user attribute: the options of the sweep
SWEEP_ID_ATTR = "nas_sweep_id"  # study user attribute: the id in DIR/study.json
KEY_ATTR = "options_key"  # trial user attribute: hash of the sweep options and the device
SWEEP_VOLATILE = tuple(sorted(tagged(SweepConfig, VOLATILE)))  # may change when run again


# -- the study -------------------------------------------------------------------------------------
def make_sampler(
    config: SweepConfig, seed: int, draw: int | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler of the sweep seeded with ``seed`` (the search's); with ``draw``, the one that
    draws trial ``draw`` (seeded with ``seed`` and ``draw``: every trial has its own random
    state)."""
    seed = seed if draw is None else draw_seed(seed, draw)
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


def _check_driver(out: Path, config: SweepConfig) -> None:
    """The database driver of ``--storage`` is installed; else one line naming the package."""
    from sqlalchemy.engine import make_url

    try:
        dialect = make_url(config.storage or "").get_dialect()
    except Exception:  # not a URL, or an unknown database: RDBStorage says which
        return
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        name = getattr(exc, "name", None) or "its driver"
        if dialect.name == "postgresql" and dialect.driver != "psycopg":
            hint = (
                'write postgresql+psycopg://..., whose driver pip install -e ".[postgres]" '
                f"installs, or install {name}"
            )
        elif dialect.name == "postgresql":
            hint = 'pip install -e ".[postgres]"'
        else:
            hint = f"install the Python package that provides {name}"
        raise ConfigError(
            f"cannot open --storage {storage_label(out, config)}: the database driver {name} "
            f"is not installed ({hint})"
        ) from None


def open_storage(out: Path, config: SweepConfig) -> BaseStorage:
    """The study's storage: the journal file in ``out`` (created) or the RDB of
    ``config.storage``; any failure to open it is a one-line :class:`ConfigError`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if config.storage:
        _check_driver(out, config)
    try:
        if not config.storage:
            return JournalStorage(JournalFileBackend(str(out / "journal.log")))
        return optuna.storages.RDBStorage(config.storage)
    except Exception as exc:  # sqlalchemy, drivers and the filesystem raise many types
        raise ConfigError(
            f"cannot open --storage {storage_label(out, config)}: {first_line(exc)}"
        ) from None


def find_study(
    storage: BaseStorage, config: SweepConfig, seed: int, draw: int | None = None
) -> optuna.Study | None:
    """The sweep's study in ``storage`` (None if there is none), its sampler the one of
    trial ``draw`` (:func:`make_sampler`)."""
    try:
        return optuna.load_study(
            study_name=config.study, storage=storage, sampler=make_sampler(config, seed, draw)
        )
    except KeyError:
        return None
    except Exception as exc:  # a storage that opened but cannot be read
        raise ConfigError(
            f"cannot read study {config.study!r} from the storage: {first_line(exc)}"
        ) from None


def load_sweep_study(
    storage: BaseStorage, config: SweepConfig, seed: int, draw: int | None = None
) -> optuna.Study:
    study = find_study(storage, config, seed, draw)
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

    def shared(config: Options, leave: frozenset[str] = frozenset()) -> dict[str, Any]:
        local = tagged(type(config), LOCAL) | leave
        return {k: v for k, v in record(config).items() if k not in local}

    fingerprint = {
        **shared(options),
        "data": data,
        "search": shared(search),
        "sweep": shared(sweep, frozenset(SWEEP_VOLATILE)),
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


def check_joinable(
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
        check_sqlite_alone(study, config)


def _read_study_file(out: Path) -> dict[str, Any]:
    path = out / STUDY_FILE
    return read_json(path, "sweep study file") if path.is_file() else {}


def create_study(
    storage: BaseStorage,
    out: Path,
    config: SweepConfig,
    seed: int,
    fingerprint: dict[str, Any],
    param: str,
    metric_names: Sequence[str],
) -> optuna.Study:
    """A new study recording the sweep's options and directory, its objectives named
    ``metric_names`` (as optuna-dashboard shows them); with ``budgets``, its first trials take
    the listed budgets in order (the sampler draws their other knobs)."""
    try:
        study = optuna.create_study(
            study_name=config.study,
            storage=storage,
            sampler=make_sampler(config, seed, 0),
            directions=DIRECTIONS,
        )
    except optuna.exceptions.DuplicatedStudyError:  # made meanwhile without our lock
        raise ConfigError(
            f"study {config.study!r} in {storage_label(out, config)} was just made by a process "
            "using another sweep directory; every process must use the same one"
        ) from None
    sweep_id = uuid.uuid4().hex
    with warnings.catch_warnings():  # "experimental" since optuna 3.2; what the dashboard reads
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(metric_names))
    study.set_user_attr(OPTIONS_ATTR, fingerprint)
    study.set_user_attr(SWEEP_ID_ATTR, sweep_id)
    write_json(out / STUDY_FILE, {"study": config.study, "sweep_id": sweep_id})
    cover_budgets(study, config, param)
    return study


def cover_budgets(study: optuna.Study, config: SweepConfig, param: str) -> None:
    """With ``--budgets``, a new study's first trials take the listed budgets (trial parameter
    ``param``) in order, one each (the sampler draws their other knobs), so every budget is
    searched; the sampler chooses the budgets of the later trials. Call under
    :func:`sweep_lock`."""
    if config.budgets is None or study.get_trials(deepcopy=False):
        return
    for budget in config.budgets:
        study.enqueue_trial({param: budget})


def counted(study: optuna.Study) -> int:
    """Trials that count towards the total: finished, or running in a live process."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.RUNNING)
    )


def draws(study: optuna.Study) -> int:
    """Trials drawn so far (all but those waiting in the queue, and retries of interrupted
    trials: an interruption does not shift the draws of the trials after it)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state != TrialState.WAITING and RETRY_ATTR not in t.user_attrs
    )


def next_trial(
    storage: BaseStorage, out: Path, config: SweepConfig, seed: int, key: str = ""
) -> optuna.Trial | None:
    """A new trial, or None once the study has its ``trials`` (checked under the lock). Its
    study handle (``trial.study``) has a sampler seeded for this draw (:func:`make_sampler`)."""
    with sweep_lock(out):
        study = load_sweep_study(storage, config, seed)
        fail_orphans(study)
        if counted(study) >= config.trials:
            return None
        if config.is_sqlite:
            check_sqlite_alone(study, config)
        study = load_sweep_study(storage, config, seed, draws(study))
        trial = study.ask()
        mark_owner(trial, config.heartbeat)
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
