"""The sweep directory's file lock, and which trials belong to processes that died."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.sweep.config import SweepConfig

__all__ = ["LOCK_FILE", "check_sqlite_alone", "fail_orphans", "sweep_lock"]

LOCK_FILE = ".sweep.lock"


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


RETRY_ATTR = "retry_of"  # trial user attribute: the interrupted trial this one repeats


def fail_orphans(study: optuna.Study) -> None:
    """Mark RUNNING trials whose process on this machine has died as FAIL, and queue a retry
    of each with the same parameters (:func:`retry`), so an interrupted sweep resumes to the
    result it would have had."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("host") == host and not _alive(int(t.user_attrs.get("pid", -1))):
            study.tell(t.number, state=TrialState.FAIL)
            retry(study, t)


def retry(study: optuna.Study, trial: optuna.trial.FrozenTrial | optuna.Trial) -> None:
    """Queue a trial with ``trial``'s parameters that continues its search where it stopped
    (in the interrupted trial's directory, from its checkpoint). One stopped before it had
    parameters is simply replaced by the next draw."""
    # a queued trial stopped before its parameters were suggested still has them fixed
    system = getattr(trial, "system_attrs", None) or {}
    params = dict(trial.params) or dict(system.get("fixed_params") or {})
    if not params:
        return
    study.enqueue_trial(
        params, user_attrs={RETRY_ATTR: trial.user_attrs.get(RETRY_ATTR, trial.number)}
    )


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


def check_sqlite_alone(study: optuna.Study, config: SweepConfig) -> None:
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
