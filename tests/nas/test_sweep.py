"""``nas sweep``: the files a sweep writes and their consistency, the uniform-width curve's
inheritance, resuming, interrupted and failed trials, several processes on one study (distinct
draws, one line for a failing worker), an SQLite storage, refusal of bad options, storages,
directories and studies, ``nas plot pareto``, the seeded samplers, and the Pareto/hypervolume
helpers.

The end-to-end sweeps use the embedded 8x8 digits, one baseline epoch and one epoch per phase
(seconds per trial).
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

import nas
import nas.jobs.common
import nas.sweep
import nas.sweep.run
import nas.sweep.study
import nas.sweep.uniform
import nas.sweep.workers
from nas.cli import main
from nas.cost import count_model_params, measure_macs
from nas.errors import ConfigError
from nas.io import read_csv
from nas.jobs.common import RunOptions, load_search_run, load_supernet
from nas.supernet import CALIBRATION_BATCHES, extract_at, take_batches
from nas.sweep import TUNABLE, SweepConfig, hypervolume, make_sampler, pareto_rows, run_sweep
from nas.width_search import SearchConfig
from search_spaces import WidthSpec

slow = pytest.mark.slow  # end-to-end sweeps (seconds each on a CPU)

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BUDGETS = (0.3, 0.6)
TINY = SearchConfig(warmup_epochs=1, search_epochs=1, finetune_epochs=1)
TRIAL_DIR = re.compile(r"trial-\d{4}")
Swept = tuple[Path, dict[str, Any], list[str]]  # sweep directory, metrics, baseline trainings
CLI_SWEEP = [
    "--budgets",
    "0.3,0.6",
    "--baseline-epochs",
    "1",
    "--warmup-epochs",
    "0",
    "--search-epochs",
    "1",
    "--finetune-epochs",
    "1",
    "--no-uniform",
    "--quiet",
]


def cli_sweep(out: Path, *extra: str) -> list[str]:
    """``nas sweep`` argv for a tiny sweep (later options override earlier ones)."""
    return ["sweep", "--out", str(out), *CLI_SWEEP, *extra]


def options(out: Path) -> RunOptions:
    return RunOptions(out_dir=str(out), baseline_epochs=1, progress=False)


def sweep(out: Path, trials: int, *, uniform: bool = False) -> dict[str, Any]:
    return run_sweep(
        options(out), TINY, SweepConfig(trials=trials, budgets=BUDGETS, uniform=uniform)
    )


def load_study(out: Path, name: str = "channel-nas") -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(out / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def trial_dirs(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "trials").iterdir() if p.is_dir())


def dominates(a: dict[str, str], b: dict[str, str]) -> bool:
    """``a`` is at least as good as ``b`` in both objectives and better in one."""
    acc_a, acc_b = float(a["searched_acc"]), float(b["searched_acc"])
    macs_a, macs_b = int(a["macs"]), int(b["macs"])
    return acc_a >= acc_b and macs_a <= macs_b and (acc_a > acc_b or macs_a < macs_b)


def state_of(path: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(path, map_location="cpu", weights_only=True))


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    """A finished 3-trial sweep with the uniform curve; also the descs of every full-network
    training run (``nas.jobs.common.train_model``) it started."""
    out = tmp_path_factory.mktemp("sweep") / "run"
    trainings: list[str] = []
    real = nas.jobs.common.train_model

    def counting(*args: Any, **kwargs: Any) -> Any:
        trainings.append(str(kwargs.get("desc")))
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nas.jobs.common, "train_model", counting)
        metrics = sweep(out, 3, uniform=True)
    yield out, metrics, trainings


# -- a sweep end to end --------------------------------------------------------------------------
@slow
def test_sweep_writes_consistent_outputs(swept: Swept) -> None:
    out, metrics, _ = swept
    for name in ("trials.csv", "pareto.csv", "uniform.csv", "metrics.json", "args.yaml"):
        assert (out / name).is_file(), name
    assert (out / "pareto.png").read_bytes()[:8] == PNG_MAGIC
    assert yaml.safe_load((out / "args.yaml").read_text())["command"] == "sweep"

    rows = read_csv(out / "trials.csv")
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(complete) == 3 and len(rows) == 3
    # every listed budget is searched: the first trials take them in order
    assert [float(r["target_macs"]) for r in rows[: len(BUDGETS)]] == list(BUDGETS)
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["complete"] == 3 and metrics["trials"] == 3

    # one trial directory per trial that ran (none repeats another here), holding its network
    assert all(r["same_as"] == "" for r in rows)
    assert trial_dirs(out) == sorted(f"trial-{int(r['number']):04d}" for r in rows)
    assert all(TRIAL_DIR.fullmatch(name) for name in trial_dirs(out))
    assert {r["run_dir"] for r in rows} == {f"trials/{name}" for name in trial_dirs(out)}

    # every trial's MACs are those of its arch.json and of the network it saved, at its target
    for r in complete:
        run_dir = out / r["run_dir"]
        spec = WidthSpec.load(run_dir / "arch.json")
        model = nas.load_model(run_dir)
        assert int(r["macs"]) == spec.macs() == measure_macs(model, (1, 8, 8)), r["number"]
        assert int(r["params"]) == spec.params() == count_model_params(model), r["number"]
        assert float(r["macs_ratio"]) == pytest.approx(spec.macs_ratio())
        target = float(r["target_macs"])
        assert target in BUDGETS
        assert abs(spec.macs_ratio() / target - 1) <= TINY.tolerance + 1e-9, r["number"]

    # the Pareto front: exactly the non-dominated complete trials, by increasing MACs
    front = read_csv(out / "pareto.csv")
    on_front = {r["number"] for r in front}
    for r in complete:
        dominated = any(dominates(o, r) for o in complete)
        assert (r["number"] in on_front) == (not dominated), r["number"]
    assert [int(r["macs"]) for r in front] == sorted(int(r["macs"]) for r in front)
    assert metrics["pareto_points"] == len(front)
    expected = hypervolume([(float(r["macs_ratio"]), float(r["searched_acc"])) for r in front])
    assert metrics["hypervolume"] == pytest.approx(expected) and 0 < expected <= 1

    # the uniform-width curve: one point per budget, at that share of the MACs
    uniform = read_csv(out / "uniform.csv")
    assert [float(u["target"]) for u in uniform] == list(BUDGETS)
    for u in uniform:
        assert abs(float(u["macs_ratio"]) - float(u["target"])) < 0.03
        assert 0 <= float(u["test_acc"]) <= 100
    assert metrics["uniform_hypervolume"] == pytest.approx(
        hypervolume([(float(u["macs_ratio"]), float(u["test_acc"])) for u in uniform])
    )
    # each comes from the supernet of the best completed trial at its budget
    for u in uniform:
        at_budget = [r for r in complete if float(r["target_macs"]) == float(u["target"])]
        best = max(at_budget, key=lambda r: (float(r["searched_acc"]), -int(r["number"])))
        assert u["supernet_of"] == best["number"]


@slow
def test_uniform_networks_inherit_the_supernet_of_the_trial_at_their_budget(
    swept: Swept, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    shutil.copytree(swept[0], out)
    shutil.rmtree(out / "uniform")
    trial = next(r for r in read_csv(out / "trials.csv") if float(r["target_macs"]) == 0.3)
    run_dir = out / trial["run_dir"]
    teacher = nas.load_model(out / "baseline")
    space = WidthSpec.load(out / "baseline" / "arch.json").get_space()
    teachers: list[torch.nn.Module | None] = []

    def no_finetune(small: torch.nn.Module, t: torch.nn.Module | None, *a: Any, **k: Any) -> None:
        teachers.append(t)

    monkeypatch.setattr(nas.sweep.uniform, "finetune", no_finetune)  # the weights as inherited
    point = nas.sweep.uniform.uniform_point(
        out,
        0.3,
        {**trial, "number": int(trial["number"])},
        options(out),
        TINY,
        space,
        teacher,
        False,
    )
    assert teachers == [teacher]  # fine-tuned like the trials: distilled from the baseline
    assert point["supernet_of"] == int(trial["number"])
    assert abs(point["macs_ratio"] - 0.3) < 0.03

    # the uniform network's weights are those of the trial's supernet at the uniform widths,
    # BN statistics recalibrated on training batches, not slices of the baseline
    saved = state_of(out / "uniform" / f"macs-0.3000-{run_dir.name}" / "model.pt")
    _, config = load_search_run(run_dir)
    supernet, _ = load_supernet(run_dir, space, config)
    spec = space.spec(space.uniform_widths_for_macs(0.3))
    batches = take_batches(options(out).load(config.seed).train, CALIBRATION_BATCHES)
    expected = extract_at(supernet, spec, batches).state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in saved)
    sliced = nas.extract(teacher, spec, nas.channel_order(teacher, space)).state_dict()
    assert not all(torch.equal(saved[k], sliced[k]) for k in saved)


@slow
def test_sweep_trains_the_baseline_once(swept: Swept) -> None:
    out, metrics, trainings = swept
    assert [t for t in trainings if t.startswith("train ")] == ["train resnet20"]
    # the only trained baseline is the sweep's; the trials hold copies of it, untrained
    trained = sorted(p.parent for p in out.rglob("baseline/summary.csv"))
    assert trained == [out / "baseline"]
    base = state_of(out / "baseline" / "model.pt")
    rows = read_csv(out / "trials.csv")
    accs = set()
    for r in rows:
        run_dir = out / r["run_dir"]
        assert not (run_dir / "baseline" / "checkpoint.pt").exists()
        copy = state_of(run_dir / "baseline" / "model.pt")
        assert copy.keys() == base.keys()
        assert all(torch.equal(copy[k], v) for k, v in base.items())
        accs.add(json.loads((run_dir / "metrics.json").read_text())["baseline_acc"])
        accs.add(float(r["baseline_acc"]))
    assert len(accs) == 1 and accs == {metrics["full_acc"]}


@slow
def test_trials_share_one_warm_up_and_match_a_search_alone(
    swept: Swept, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _, _ = swept
    warmup = torch.load(out / "warmup.pt", weights_only=True)
    assert [r["phase"] for r in warmup["records"]] == ["warmup"] * TINY.warmup_epochs
    rows = read_csv(out / "trials.csv")
    for r in rows:  # every trial's search begins with the shared warm-up epochs
        with open(out / r["run_dir"] / "summary.csv", encoding="utf-8", newline="") as f:
            first = next(csv.DictReader(f))
        assert first["phase"] == "warmup"
        # summary.csv holds 6 significant digits (write_search_summary): compare as written
        assert first["val_acc"] == f"{warmup['records'][0]['val_acc']:.6g}"
        assert first["train_loss"] == f"{warmup['records'][0]['train_loss']:.6g}"

    # a trial is reproduced by nas search alone from its args.yaml (warm-up included)
    trial = out / rows[-1]["run_dir"]
    alone = tmp_path / "alone"
    assert main(["search", "--config", str(trial / "args.yaml"), "--out", str(alone)]) == 0
    capsys.readouterr()
    assert (alone / "arch.json").read_text() == (trial / "arch.json").read_text()
    a, b = state_of(alone / "model.pt"), state_of(trial / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


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


def _one_line_error(code: int, err: str, word: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "error" in err and word in err, err


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


@slow
def test_outputs_are_read_made_and_written_under_the_sweep_lock(
    swept: Swept, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So a slower process never writes older rows over newer ones, and two processes never
    train the same uniform network at once."""
    out = tmp_path / "run"
    shutil.copytree(swept[0], out)
    shutil.rmtree(out / "uniform")
    locked: list[tuple[str, bool]] = []

    def held() -> bool:
        with open(out / ".sweep.lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def spy(name: str) -> Any:
        real = getattr(nas.sweep.run, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            locked.append((name, held()))
            return real(*args, **kwargs)

        return wrapper

    for name in ("trial_rows", "uniform_point", "write_csv", "plot_pareto"):
        monkeypatch.setattr(nas.sweep.run, name, spy(name))
    sweep(out, 3, uniform=True)
    assert {name for name, _ in locked} == {
        "trial_rows",
        "uniform_point",
        "write_csv",
        "plot_pareto",
    }
    assert all(is_held for _, is_held in locked), locked
    assert len(read_csv(out / "uniform.csv")) == len(BUDGETS)


# -- resuming ------------------------------------------------------------------------------------
@slow
def test_rerunning_a_finished_sweep_runs_no_trial(swept: Swept, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(swept[0], out)
    before_rows = read_csv(out / "trials.csv")
    before_dirs = trial_dirs(out)
    base_before = state_of(out / "baseline" / "model.pt")

    metrics = sweep(out, 3, uniform=True)

    assert [r["number"] for r in read_csv(out / "trials.csv")] == [r["number"] for r in before_rows]
    assert trial_dirs(out) == before_dirs
    assert len(load_study(out).get_trials()) == 3
    assert metrics["complete"] == 3
    base_after = state_of(out / "baseline" / "model.pt")
    assert all(torch.equal(base_after[k], v) for k, v in base_before.items())


@slow
def test_raising_trials_runs_exactly_the_missing_ones(swept: Swept, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(swept[0], out)
    before = trial_dirs(out)

    metrics = sweep(out, 4, uniform=True)

    after = trial_dirs(out)
    assert len(after) == 4 and set(before) < set(after)
    states = [t.state for t in load_study(out).get_trials()]
    assert states == [TrialState.COMPLETE] * 4
    assert metrics["complete"] == 4 and len(read_csv(out / "trials.csv")) == 4


@slow
def test_an_interrupted_trial_is_failed_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    real = nas.sweep.workers.run_search
    calls: list[str] = []

    def interrupted_second(o: RunOptions, c: SearchConfig, **kwargs: Any) -> dict[str, Any]:
        calls.append(o.out_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(o, c, **kwargs)

    monkeypatch.setattr(nas.sweep.workers, "run_search", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        sweep(out, 2)
    states = [t.state for t in load_study(out).get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL]

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
    assert metrics["complete"] == 2 and metrics["trials"] == 4
    rows = read_csv(out / "trials.csv")
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert {r["number"] for r in read_csv(out / "pareto.csv")} <= {"0", "3"}
    for r in rows:
        if r["state"] == "COMPLETE":
            assert (out / r["run_dir"] / "model.pt").is_file()


# -- several processes ---------------------------------------------------------------------------
def _cli(out: Path, *extra: str) -> subprocess.Popen[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "sweep", "--out", str(out), *extra, *CLI_SWEEP],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check_study(out: Path, trials: int) -> None:
    study = load_study(out)
    done = study.get_trials(states=(TrialState.COMPLETE,))
    numbers = [t.number for t in done]
    assert len(done) == trials and len(set(numbers)) == trials
    assert len(study.get_trials()) == trials  # nothing failed, nothing left running
    run_dirs = {t.user_attrs["run_dir"] for t in done}
    assert len(run_dirs) == trials
    assert trial_dirs(out) == sorted(Path(d).name for d in run_dirs)
    for d in run_dirs:
        assert (out / d / "model.pt").is_file() and (out / d / "arch.json").is_file()
    rows = read_csv(out / "trials.csv")
    assert sorted(int(r["number"]) for r in rows if r["state"] == "COMPLETE") == sorted(numbers)


@slow
def test_two_processes_share_one_study(tmp_path: Path) -> None:
    out = tmp_path / "run"
    procs = [_cli(out, "--trials", "4"), _cli(out, "--trials", "4")]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
    _check_study(out, 4)
    trained = sorted(p.parent for p in out.rglob("baseline/summary.csv"))
    assert trained == [out / "baseline"]
    # the two processes drew distinct knobs (no trial is a twin of another's)
    knobs = [tuple(sorted(t.params.items())) for t in load_study(out).get_trials()]
    assert len(set(knobs)) == len(knobs) == 4


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
        nas.sweep.study.create_study(storages[0], out, config, seed, {})
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


@slow
def test_workers_option_finishes_the_study(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _cli(out, "--trials", "2", "--workers", "2")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    _check_study(out, 2)


# -- nas plot pareto -----------------------------------------------------------------------------
@slow
def test_plot_pareto_overlays_sweeps(
    swept: Swept, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other"
    shutil.copytree(swept[0], other)
    png = tmp_path / "f.png"
    code = main(["plot", "pareto", str(swept[0]), str(other), "--out", str(png)])
    out, _ = capsys.readouterr()
    assert code == 0 and str(png) in out
    assert png.read_bytes()[:8] == PNG_MAGIC

    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad.png"
    for argv in (
        [str(swept[0]), str(tmp_path / "empty")],
        [str(swept[0]), str(tmp_path / "missing")],
        [str(swept[0]), str(other), "--labels", "only-one"],
    ):
        code = main(["plot", "pareto", *argv, "--out", str(bad)])
        _, err = capsys.readouterr()
        assert code == 2, argv
        assert len(err.strip().splitlines()) == 1 and "error" in err, err
        assert "Traceback" not in err
        assert not bad.exists()

    # a sweep directory with a malformed table or a corrupt metrics.json
    for name, text, word in (
        ("pareto.csv", "number,state\n0,COMPLETE\n", "macs_ratio"),
        ("pareto.csv", "macs_ratio,searched_acc\n0.5,high\n", "not a number"),
        ("trials.csv", "number\n0\n", "state"),
        ("uniform.csv", "macs_ratio\n0.5\n", "test_acc"),
        ("metrics.json", "{not json", "not valid JSON"),
        ("metrics.json", '{"hypervolume": 0.5}', "full_acc"),
    ):
        broken = tmp_path / f"broken-{name}-{word}".replace(" ", "-")
        shutil.copytree(swept[0], broken)
        (broken / name).write_text(text)
        code = main(["plot", "pareto", str(swept[0]), str(broken), "--out", str(bad)])
        _one_line_error(code, capsys.readouterr().err, word)
        assert not bad.exists()


# -- bad input -----------------------------------------------------------------------------------
BAD_SWEEPS = [  # (options, a word of the one-line error)
    (["--macs-range", "0.5,0.5"], "--macs-range"),
    (["--macs-range", "0.9,0.2"], "--macs-range"),
    (["--budgets", ""], "--budgets must be a non-empty list of numbers"),
    (["--budgets", "0,0.5"], "--budgets must hold values in (0, 1]"),
    (["--budgets", "1.5"], "--budgets must hold values in (0, 1]"),
    (["--storage", "sqlite:///x.db", "--workers", "2"], "SQLite"),
    (["--sampler", "nope"], "--sampler"),
    (["--tune", "nope"], "unknown --tune 'nope'; choose one of: budget_weight, tau0, arch_lr"),
    (["--trials", "0"], "--trials"),
    (["--budgets", "0.3,0.6,0.3"], "more than once"),
    (["--budgets", "0.3,0.6", "--trials", "1"], "fewer than the 2 --budgets"),
    (["--storage", "foo://x"], "cannot open --storage foo://x"),
    (["--storage", "sqlite:////nonexistent/dir/x.db"], "cannot open --storage"),
    (["--overwrite"], "does not overwrite"),
]


@pytest.mark.parametrize(("argv", "word"), BAD_SWEEPS, ids=[" ".join(a) for a, _ in BAD_SWEEPS])
def test_bad_sweep_options_are_one_line_and_exit_code_2(
    argv: list[str],
    word: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "new"
    code = main(["sweep", "--out", str(out), "--quiet", *argv])
    _, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "error" in err and word in err, err
    assert list(tmp_path.iterdir()) == []  # no sweep directory, no x.db


def test_sweep_refuses_a_directory_that_holds_no_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, content in (("metrics.json", '{"mine": 1}\n'), ("args.yaml", "command: search\n")):
        mine = tmp_path / name.split(".")[0]
        mine.mkdir()
        (mine / name).write_text(content)
        code = main(cli_sweep(mine))
        _one_line_error(code, capsys.readouterr().err, "holds no sweep")
        assert [p.name for p in mine.iterdir()] == [name]
        assert (mine / name).read_text() == content


# -- the sampler ---------------------------------------------------------------------------------
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


def test_suggest_draws_budgets_from_the_list() -> None:
    config = SweepConfig(budgets=(0.25, 0.5), tune=())
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(config, 0)
    )
    for _ in range(6):
        trial = study.ask()
        search = config.suggest(trial, TINY)
        assert set(trial.params) == {"target_macs"}
        assert float(search.target_macs) in (0.25, 0.5)
        assert search.budget_weight == TINY.budget_weight  # not tuned: unchanged


# -- Pareto front and hypervolume ----------------------------------------------------------------
def test_hypervolume_by_hand() -> None:
    # (MAC ratio, accuracy %): the area of [0.25, 1] x [0, 0.8] and [0.5, 1] x [0, 0.9]
    two = [(0.5, 90.0), (0.25, 80.0)]
    assert hypervolume(two) == pytest.approx(0.75 * 0.8 + 0.5 * (0.9 - 0.8))
    # a dominated point adds nothing; a point above the reference MACs is left out
    assert hypervolume([*two, (0.6, 70.0), (1.2, 99.0)]) == pytest.approx(0.65)
    # a cheaper, better point covers a dearer one
    assert hypervolume([(0.25, 95.0), (0.5, 90.0)]) == pytest.approx(0.75 * 0.95)
    assert hypervolume([(1.0, 100.0)]) == 0.0
    assert hypervolume([]) == 0.0
    assert hypervolume([(0.0, 100.0)]) == pytest.approx(1.0)
    assert hypervolume([(0.5, 50.0)], ref_ratio=2.0) == pytest.approx(1.5 * 0.5)


def test_pareto_rows_by_hand() -> None:
    def row(number: int, acc: float, macs: int, state: str = "COMPLETE") -> dict[str, Any]:
        return {"number": number, "state": state, "searched_acc": acc, "macs": macs}

    rows = [
        row(0, 80.0, 500),  # on the front
        row(1, 70.0, 600),  # dominated by 0
        row(2, 90.0, 900),  # on the front
        row(3, 60.0, 200),  # on the front (cheapest)
        row(4, 80.0, 500),  # equal to 0: neither dominates
        row(5, 80.0, 550),  # dominated by 0 (same accuracy, more MACs)
        row(6, 99.0, 100, state="FAIL"),  # would dominate everything: not complete
        row(7, None, None, state="RUNNING"),  # type: ignore[arg-type]
    ]
    front = pareto_rows(rows)
    assert [r["number"] for r in front] in ([3, 0, 4, 2], [3, 4, 0, 2])
    assert pareto_rows([]) == []
    assert pareto_rows([row(0, 50.0, 100, state="FAIL")]) == []
