"""nas.sweep.lock: which RUNNING trials belong to dead workers, and the heartbeat that tells."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from nas.sweep.lock import MISSED_BEATS, fail_orphans, heartbeat, mark_owner


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(directions=["maximize", "minimize"])


def _running(study: optuna.Study, host: str, pid: int, beat_age: float | None) -> int:
    trial = study.ask({"target_macs": optuna.distributions.FloatDistribution(0.1, 0.9)})
    trial.set_user_attr("host", host)
    trial.set_user_attr("pid", pid)
    if beat_age is not None:
        trial.set_user_attr("heartbeat_s", 1.0)
        trial.set_user_attr("heartbeat", time.time() - beat_age)
    return trial.number


def test_dead_workers_trials_are_failed_and_queued_again_live_ones_are_left() -> None:
    study = _study()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    gone_here = _running(study, here, dead.pid, beat_age=0.0)  # fresh beat, but process gone
    alive_here = _running(study, here, 1, beat_age=1e6)  # pid 1 lives: no heartbeat needed
    silent_there = _running(study, "another-machine", 7, beat_age=MISSED_BEATS + 1.0)
    beating_there = _running(study, "another-machine", 7, beat_age=MISSED_BEATS - 1.0)
    unknown_there = _running(study, "another-machine", 7, beat_age=None)  # no heartbeats kept

    fail_orphans(study)

    states = {t.number: t.state for t in study.get_trials()}
    assert states[gone_here] == states[silent_there] == TrialState.FAIL
    assert states[alive_here] == states[beating_there] == states[unknown_there]
    assert states[alive_here] == TrialState.RUNNING
    queued = [t for t in study.get_trials() if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs["retry_of"] for t in queued) == [gone_here, silent_there]
    params = {t.number: t.params for t in study.get_trials()}
    assert all(t.system_attrs["fixed_params"] == params[t.user_attrs["retry_of"]] for t in queued)


def test_a_heartbeat_keeps_a_running_trial_alive_and_stops_with_it() -> None:
    every = 0.05
    study = _study()
    trial = study.ask()
    mark_owner(trial, every)
    first = study.trials[0].user_attrs["heartbeat"]
    with heartbeat(trial, every):
        time.sleep(every * 6)
        during = study.trials[0].user_attrs["heartbeat"]
    time.sleep(every * 3)
    after = study.trials[0].user_attrs["heartbeat"]
    assert during > first and after == during  # beats while the trial runs, not after
    assert study.trials[0].user_attrs["heartbeat_s"] == every
    assert time.time() - during < MISSED_BEATS * every + 1.0
