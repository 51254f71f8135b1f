"""The sweep directory's file lock, workers' heartbeats, and which trials belong to processes
that died.

A worker's trial records the host and process that run it and, every ``--heartbeat`` seconds, the
time (:func:`heartbeat`, a thread beside the search). A RUNNING trial is taken as dead, failed and
queued again (:func:`fail_orphans`, the equivalent of Optuna's heartbeat with
``RetryFailedTrialCallback``, on every storage, the journal file included) when its process is
gone from this machine, or, for a trial on another machine, when it missed
:data:`MISSED_BEATS` heartbeats in a row (its machine stopped, or lost the storage). Its retry
continues the search in the dead trial's directory, from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.sweep.config import SweepConfig

__all__ = [
    "LOCK_FILE",
    "MISSED_BEATS",
    "check_sqlite_alone",
    "fail_orphans",
    "heartbeat",
    "mark_owner",
    "sweep_lock",
]

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
BEAT_ATTR = "heartbeat"  # trial user attribute: unix time of its worker's last heartbeat
EVERY_ATTR = "heartbeat_s"  # trial user attribute: seconds between its worker's heartbeats
MISSED_BEATS = 4  # heartbeats a trial on another machine may miss before it is taken as dead


def mark_owner(trial: optuna.Trial, every: float) -> None:
    """Record in a new trial the process that runs it and its first heartbeat."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr(EVERY_ATTR, float(every))
    trial.set_user_attr(BEAT_ATTR, time.time())


@contextlib.contextmanager
def heartbeat(trial: optuna.Trial, every: float) -> Iterator[None]:
    """While the body runs, a thread records the time in ``trial`` every ``every`` seconds (a
    beat that fails, the storage briefly unreachable, is skipped)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):
                trial.set_user_attr(BEAT_ATTR, time.time())

    thread = threading.Thread(target=beat, name="nas-sweep-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def is_orphan(trial: optuna.trial.FrozenTrial, host: str, now: float) -> bool:
    """A RUNNING trial whose worker is dead: its process is gone from this machine, or (another
    machine's) it missed :data:`MISSED_BEATS` heartbeats."""
    attrs = trial.user_attrs
    if attrs.get("host") == host:
        return not _alive(int(attrs.get("pid", -1)))
    beat, every = attrs.get(BEAT_ATTR), attrs.get(EVERY_ATTR)
    if not isinstance(beat, (int, float)) or not isinstance(every, (int, float)):
        return False  # a worker that records no heartbeats: only its own machine can tell
    return now - beat > MISSED_BEATS * every


def fail_orphans(study: optuna.Study) -> None:
    """Mark RUNNING trials whose worker died (:func:`is_orphan`) as FAIL, and queue a retry of
    each with the same parameters (:func:`retry`), so an interrupted sweep resumes to the
    result it would have had."""
    host, now = socket.gethostname(), time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_orphan(t, host, now):
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
    host, pid, now = socket.gethostname(), os.getpid(), time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        t_host, t_pid = t.user_attrs.get("host"), int(t.user_attrs.get("pid", -1))
        if t_pid != pid and not is_orphan(t, host, now):
            raise ConfigError(
                f"study {config.study!r} in {config.storage} is in use: trial {t.number} runs in "
                f"process {t_pid} on {t_host}; SQLite serves one process at a time (wait for it, "
                "or use the default journal file or PostgreSQL/MySQL for several processes)"
            )
