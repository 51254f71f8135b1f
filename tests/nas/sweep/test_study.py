"""nas.sweep.study: the samplers, drawing trials, reused twins and an SQLite study."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import nas.sweep
import nas.sweep.study
from nas.cli import main
from nas.io import read_csv
from nas.sweep import TUNABLE, SweepConfig, hypervolume, make_sampler
from nas.sweep.config import AXES
from nas.width_search import SearchConfig
from tests.nas.sweep.conftest import TINY, _one_line_error, cli_sweep, trial_dirs

slow = pytest.mark.slow  # end-to-end sweeps (seconds each on a CPU)


@pytest.fixture(scope="module")
def sqlite_swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A finished 2-trial sweep stored in SQLite under its own study name, through the CLI. One
    budget and nothing tuned: every trial has the parameters of the first. Also its argv."""
    base = tmp_path_factory.mktemp("sqlite")
    out = base / "run"
    argv = cli_sweep(
        out,
        "--storage",
        f"sqlite:///{base / 'studies.db'}",
        "--study",
        "twins",
        "--budgets",
        "0.5",
        "--tune",
        "",
        "--trials",
        "2",
    )
    assert main(argv) == 0
    return out, argv


@pytest.mark.e2e
@slow
def test_a_trial_that_repeats_a_finished_one_reuses_its_result(
    sqlite_swept: tuple[Path, list[str]],
) -> None:
    out, _ = sqlite_swept
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_csv(out / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert rows[1]["same_as"] == "0" and rows[1]["run_dir"] == rows[0]["run_dir"]
    for key in ("searched_acc", "macs", "macs_ratio", "params"):
        assert rows[1][key] == rows[0][key], key
    assert float(rows[1]["seconds"]) == 0.0
    assert trial_dirs(out) == ["trial-0000"]  # searched once
    assert metrics["complete"] == 2
    # the Pareto front lists the one network once
    front = read_csv(out / "pareto.csv")
    assert [r["number"] for r in front] == ["0"] and metrics["pareto_points"] == 1
    assert metrics["hypervolume"] == pytest.approx(
        hypervolume([(float(rows[0]["macs_ratio"]), float(rows[0]["searched_acc"]))])
    )


def test_a_twin_is_reused_only_under_the_same_options_and_device() -> None:
    config = SweepConfig(budgets=(0.5,), tune=())
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(config, 0)
    )
    study.set_user_attr(nas.sweep.study.OPTIONS_ATTR, {"space": "resnet20"})
    cpu, cuda = (
        nas.sweep.study.options_key(study, "cpu"),
        nas.sweep.study.options_key(study, "cuda"),
    )
    assert cpu != cuda

    def trial(key: str) -> optuna.Trial:
        t = study.ask()
        config.suggest(t, TINY)
        t.set_user_attr(nas.sweep.study.KEY_ATTR, key)
        return t

    first = trial(cpu)
    study.tell(first, [50.0, 100.0])
    assert nas.sweep.study.finished_twin(study, trial(cuda)) is None
    twin = nas.sweep.study.finished_twin(study, trial(cpu))
    assert twin is not None and twin.number == first.number


@pytest.mark.e2e
@slow
def test_an_sqlite_study_resumes_and_refuses_other_sweeps_and_live_processes(
    sqlite_swept: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, argv = sqlite_swept
    capsys.readouterr()
    url = argv[argv.index("--storage") + 1]
    study = optuna.load_study(study_name="twins", storage=optuna.storages.RDBStorage(url))
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
    assert not (out / "journal.log").exists()
    args_yaml = (out / "args.yaml").read_text()

    assert main(argv) == 0  # the same command resumes: nothing to do
    assert len(study.get_trials()) == 2

    # another directory joining the study: refused, nothing left behind
    other = tmp_path / "other"
    code = main([*argv, "--out", str(other)])
    _one_line_error(code, capsys.readouterr().err, "another sweep directory")
    assert not other.exists()

    # the same sweep with other options: refused, its files unchanged
    code = main([*argv, "--seed", "1"])
    err = capsys.readouterr().err
    _one_line_error(code, err, "other options")
    assert "seed" in err
    assert (out / "args.yaml").read_text() == args_yaml
    assert len(study.get_trials()) == 2

    # another live process runs a trial of the study: SQLite refuses to join it
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        running = study.ask()
        running.set_user_attr("host", socket.gethostname())
        running.set_user_attr("pid", sleeper.pid)
        code = main(argv)
        _one_line_error(code, capsys.readouterr().err, "SQLite")
    finally:
        sleeper.kill()
        sleeper.wait()
    # once that process is gone, its trial is failed and the sweep goes on
    assert main(argv) == 0
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert (out / "args.yaml").read_text() == args_yaml


@pytest.mark.parametrize("sampler", nas.sweep.SAMPLERS)
def test_processes_on_one_study_draw_distinct_reproducible_trials(
    sampler: str, tmp_path: Path
) -> None:
    def draw(out: Path, processes: int, seed: int = 5) -> list[tuple[float, ...]]:
        """Trials drawn by ``processes`` study handles (as separate processes have) taking
        turns on one journal, two trials running at a time."""
        config = SweepConfig(trials=12, macs_range=(0.2, 0.9), sampler=sampler)
        out.mkdir()
        storages = [nas.sweep.study.open_storage(out, config) for _ in range(processes)]
        axis = AXES["macs"]
        names = ("searched_val_acc", axis.value)
        nas.sweep.study.create_study(storages[0], out, config, seed, {}, axis.param, names)
        params = []
        for i in range(0, config.trials, 2):
            pair = [
                nas.sweep.study.next_trial(storages[(i + j) % processes], out, config, seed)
                for j in (0, 1)
            ]
            for j, trial in enumerate(pair):
                assert trial is not None
                config.suggest(trial, TINY)
                params.append(tuple(trial.params.values()))
                trial.study.tell(trial, [float((i + j) % 3), float(100 - i - j)])
        assert nas.sweep.study.next_trial(storages[0], out, config, seed) is None
        return params

    two = draw(tmp_path / "two", 2)
    # the random first generation (NSGA-II) / startup trials (TPE): no two drawn alike (later,
    # NSGA-II may breed a copy of a parent, which the sweep then reuses as a twin)
    assert len(set(two[:6])) == 6
    # reproducible from the seed, whichever process draws which trial
    assert draw(tmp_path / "one", 1) == two
    assert draw(tmp_path / "seed", 2, seed=6) != two


def test_sampler_is_explicit() -> None:
    nsga2 = make_sampler(SweepConfig(sampler="nsga2"), 0)
    assert isinstance(nsga2, optuna.samplers.NSGAIISampler)
    assert isinstance(make_sampler(SweepConfig(sampler="tpe"), 0), optuna.samplers.TPESampler)
    assert isinstance(make_sampler(SweepConfig(), 0), optuna.samplers.NSGAIISampler)


def _first_suggestion(config: SweepConfig, seed: int) -> tuple[dict[str, Any], SearchConfig]:
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(config, seed)
    )
    trial = study.ask()
    search = config.suggest(trial, SearchConfig(seed=7))
    return dict(trial.params), search


@pytest.mark.parametrize("sampler", ["nsga2", "tpe"])
def test_sampler_is_seeded(sampler: str) -> None:
    first, search = _first_suggestion(SweepConfig(sampler=sampler), 3)
    again, _ = _first_suggestion(SweepConfig(sampler=sampler), 3)
    other, _ = _first_suggestion(SweepConfig(sampler=sampler), 4)
    assert first == again
    assert first != other
    # the suggestion is a valid search configuration: a target in range, knobs in theirs
    assert set(first) == {"target_macs", *TUNABLE}
    assert 0.2 <= float(search.target_macs) <= 0.9
    for name, (lo, hi) in TUNABLE.items():
        assert lo <= getattr(search, name) <= hi and getattr(search, name) == first[name]
    assert search.seed == 7
    search.validate()
