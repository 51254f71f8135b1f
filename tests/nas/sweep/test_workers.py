"""nas.sweep.workers: interrupted and failed trials, several processes on one study."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

import nas.sweep.workers
from nas.errors import ConfigError
from nas.io import read_csv
from nas.runs import RunOptions
from nas.sweep import SweepConfig
from nas.width_search import SearchConfig
from tests.nas.sweep.conftest import (
    BUDGETS,
    CLI_SWEEP,
    TINY,
    load_study,
    options,
    storage_args,
    sweep,
    trial_dirs,
)

slow = pytest.mark.slow  # end-to-end sweeps (seconds each on a CPU)


REPO = Path(__file__).resolve().parents[3]


def _interrupt_second_search(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[Path], None] | None = None
) -> Callable[..., dict[str, Any]]:
    """The sweep's second trial search is interrupted (Ctrl-C) as it starts, after ``before``
    did what it does to the trial's directory; returns the real search."""
    real = nas.sweep.workers.run_search
    calls: list[str] = []

    def interrupted_second(o: RunOptions, c: SearchConfig, **kwargs: Any) -> dict[str, Any]:
        calls.append(o.out_dir)
        if len(calls) == 2:
            if before is not None:
                before(Path(o.out_dir))
            raise KeyboardInterrupt
        return real(o, c, **kwargs)

    monkeypatch.setattr(nas.sweep.workers, "run_search", interrupted_second)
    return real


@pytest.mark.e2e
@slow
def test_an_interrupted_trial_is_failed_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    real = _interrupt_second_search(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        sweep(out, 2)
    states = [t.state for t in load_study(out).get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]  # its retry

    # a trial left RUNNING by a process that was killed (no chance to mark it FAIL)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = load_study(out).ask()
    orphan.set_user_attr("host", socket.gethostname())
    orphan.set_user_attr("pid", dead.pid)

    monkeypatch.setattr(nas.sweep.workers, "run_search", real)
    metrics = sweep(out, 2)

    trials = load_study(out).get_trials()
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.FAIL,
        TrialState.COMPLETE,
    ]
    assert metrics["complete"] == 2 and metrics["trials"] == 2 and metrics["failed"] == 2
    # the interrupted trial is retried with its parameters, in its directory (its checkpoint)
    assert trials[3].params == trials[1].params and trials[3].user_attrs["retry_of"] == 1
    assert trials[3].user_attrs["run_dir"] == str(Path("trials") / "trial-0001")
    rows = read_csv(out / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert {r["number"] for r in read_csv(out / "pareto.csv")} <= {"0", "3"}
    for r in rows:
        if r["state"] == "COMPLETE":
            assert (out / r["run_dir"] / "model.pt").is_file()


@pytest.mark.e2e
@slow
def test_a_trial_killed_before_its_search_recorded_itself_is_run_again_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"

    def half_started(run_dir: Path) -> None:  # the directory, a half-written args.yaml
        run_dir.mkdir(parents=True)
        (run_dir / ".args.yaml.x1y2.tmp").write_text("command: sea")

    real = _interrupt_second_search(monkeypatch, half_started)
    with pytest.raises(KeyboardInterrupt):
        sweep(out, 2)
    monkeypatch.setattr(nas.sweep.workers, "run_search", real)
    metrics = sweep(out, 2)

    trials = load_study(out).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert metrics["complete"] == 2 and trials[2].user_attrs["retry_of"] == 1
    retried = out / trials[2].user_attrs["run_dir"]
    assert retried.name == "trial-0001" and (retried / "model.pt").is_file()
    assert not list(retried.glob(".args.yaml.*.tmp"))


def _cli(out: Path, *extra: str, machine: str | None = None) -> subprocess.Popen[str]:
    """``nas sweep`` in a process of its own; with ``machine``, as if on another machine (a
    UTS namespace with that host name, where ``unshare`` may make one)."""
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "nas.cli", "sweep", "--out", str(out), *extra, *CLI_SWEEP]
    if machine is not None:
        argv = ["unshare", "--uts", "sh", "-c", f'hostname {machine} && exec "$@"', "sh", *argv]
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _can_pose_as_another_machine() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--uts", "sh", "-c", "hostname nas-probe"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


def _check_study(out: Path, trials: int, name: str = "channel-nas", url: str = "") -> None:
    """The sweep in ``out`` has exactly ``trials`` complete trials, each in its own directory
    with its files, none left running, and trials.csv lists them."""
    study = load_study(out, name, url)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    numbers = [t.number for t in done]
    assert len(done) == trials and len(set(numbers)) == trials
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    run_dirs = {t.user_attrs["run_dir"] for t in done}
    assert len(run_dirs) == trials
    assert trial_dirs(out) == sorted(Path(d).name for d in run_dirs)
    for d in run_dirs:
        assert (out / d / "model.pt").is_file() and (out / d / "arch.json").is_file()
    rows = read_csv(out / "trials.csv")
    assert sorted(int(r["number"]) for r in rows if r["state"] == "COMPLETE") == sorted(numbers)


@pytest.mark.distributed
@pytest.mark.e2e
@slow
def test_two_processes_share_one_study(tmp_path: Path, storage: dict[str, str]) -> None:
    out = tmp_path / "run"
    args = ["--trials", "6", *storage_args(storage)]
    procs = [_cli(out, *args), _cli(out, *args)]
    results = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    _check_study(out, 6, storage["name"], storage["url"])
    trials = load_study(out, storage["name"], storage["url"]).get_trials()
    assert len(trials) == 6  # none failed, none lost
    trained = sorted(p.parent for p in out.rglob("baseline/summary.csv"))
    assert trained == [out / "baseline"]
    # the two processes drew distinct knobs (no trial is a twin of another's), and both worked
    knobs = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(knobs)) == len(knobs)
    assert len({t.user_attrs["pid"] for t in trials}) == 2


@pytest.mark.distributed
@pytest.mark.e2e
@slow
def test_a_worker_killed_in_a_trial_has_its_trial_failed_and_run_again(
    tmp_path: Path, storage: dict[str, str]
) -> None:
    # the victim runs as if on another machine where it can (then only its missed heartbeats
    # tell that it died), beside a surviving worker; it is killed with SIGKILL in a trial
    out = tmp_path / "run"
    args = ["--trials", "6", "--heartbeat", "0.5", *storage_args(storage)]
    elsewhere = "nas-other-machine" if _can_pose_as_another_machine() else None
    victim = _cli(out, *args, machine=elsewhere)
    survivor = _cli(out, *args)
    study = None
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.2)
        try:
            study = load_study(out, storage["name"], storage["url"])
        except Exception:  # not made yet
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if (
                t.user_attrs.get("host") == (elsewhere or socket.gethostname())
                and (out / "trials" / f"trial-{t.number:04d}").is_dir()
            ):
                if elsewhere is None and t.user_attrs.get("pid") != victim.pid:
                    continue
                os.kill(victim.pid, signal.SIGKILL)
                killed = t.number
                break
    victim.wait()
    _, err = survivor.communicate(timeout=900)
    assert killed is not None, "the victim never ran a trial"
    assert survivor.returncode == 0, err
    _check_study(out, 6, storage["name"], storage["url"])
    trials = load_study(out, storage["name"], storage["url"]).get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [killed]
    # its retry ran with its parameters, in its directory (from its checkpoint)
    (again,) = [t for t in trials if t.user_attrs.get("retry_of") == killed]
    assert again.state == TrialState.COMPLETE and again.params == failed[0].params
    assert again.user_attrs["run_dir"] == str(Path("trials") / f"trial-{killed:04d}")
    # every budget was searched
    done = {t.params["target_macs"] for t in trials if t.state == TrialState.COMPLETE}
    assert done == set(BUDGETS)


@pytest.mark.distributed
@slow
def test_a_failing_worker_process_reports_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # the main process has nothing to do; its helper, a real process, stops on bad input (the
    # journal's directory does not exist): its error comes back, with no traceback
    out = tmp_path / "missing" / "run"
    monkeypatch.setattr(nas.sweep.workers, "sweep_worker", lambda *args, **kwargs: None)
    config = SweepConfig(trials=2, budgets=BUDGETS, workers=2)
    with pytest.raises(ConfigError, match="cannot open --storage"):
        nas.sweep.workers.run_workers(options(out), TINY, config, out)
    _, err = capfd.readouterr()
    assert err.strip() == "", err


@pytest.mark.distributed
@pytest.mark.e2e
@slow
def test_workers_option_finishes_the_study(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _cli(out, "--trials", "2", "--workers", "2")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    _check_study(out, 2)
