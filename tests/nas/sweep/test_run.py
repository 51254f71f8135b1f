"""nas.sweep.run: nas sweep end to end, resuming, the lock, bad options."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from optuna.trial import TrialState

import nas
import nas.runs.base
import nas.sweep.run
import nas.sweep.uniform
from nas.cli import main
from nas.cost import count_model_params, measure_macs
from nas.engine.tensorboard import tensorboard_run
from nas.io import read_csv
from nas.supernet import extract_at, take_images
from nas.sweep import hypervolume
from nas.width_search import load_search_run, load_supernet
from search_spaces import WidthSpec
from tests.nas.sweep.conftest import (
    BUDGETS,
    TINY,
    _one_line_error,
    cli_sweep,
    load_study,
    options,
    sweep,
    trial_dirs,
)

slow = pytest.mark.slow  # end-to-end sweeps (seconds each on a CPU)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TRIAL_DIR = re.compile(r"trial-\d{4}")

Swept = tuple[Path, dict[str, Any], list[str]]  # sweep directory, metrics, baseline trainings


def dominates(a: dict[str, str], b: dict[str, str]) -> bool:
    """``a`` is at least as good as ``b`` in both objectives (validation accuracy, MACs) and
    better in one."""
    acc_a, acc_b = float(a["searched_val_acc"]), float(b["searched_val_acc"])
    macs_a, macs_b = int(a["macs"]), int(b["macs"])
    return acc_a >= acc_b and macs_a <= macs_b and (acc_a > acc_b or macs_a < macs_b)


def state_of(path: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(path, map_location="cpu", weights_only=True))


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    """A finished 3-trial sweep with the uniform curve; also the descs of every full-network
    training run (``nas.runs.base.train_model``) it started."""
    out = tmp_path_factory.mktemp("sweep") / "run"
    trainings: list[str] = []
    real = nas.runs.base.train_model

    def counting(*args: Any, **kwargs: Any) -> Any:
        trainings.append(str(kwargs.get("desc")))
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp, tensorboard_run(out, name="sweep"):  # --tensorboard
        mp.setattr(nas.runs.base, "train_model", counting)
        metrics = sweep(out, 3, uniform=True)
    yield out, metrics, trainings


# -- a sweep end to end --------------------------------------------------------------------------
@pytest.mark.e2e
@slow
def test_the_study_names_its_objectives_and_records_each_trials_widths(swept: Swept) -> None:
    """What optuna-dashboard shows: the objectives by name, each trial's MAC ratio, widths and
    run directory among its user attributes."""
    out, _, _ = swept
    study = load_study(out)
    assert study.metric_names == ["searched_val_acc", "macs"]
    for t in study.get_trials(states=[TrialState.COMPLETE]):
        spec = WidthSpec.load(out / t.user_attrs["run_dir"] / "arch.json")
        assert t.user_attrs["widths"] == dict(spec.widths)
        assert t.user_attrs["macs_ratio"] == pytest.approx(spec.macs_ratio())


def _chromium() -> str:
    """The system's Chromium (never downloaded): $NAS_CHROMIUM or on PATH; a skip with the reason
    where there is none, a failure where NAS_REQUIRE_CHROMIUM is set (CI: .ci/chromium)."""
    path = (
        os.environ.get("NAS_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if path:
        return path
    if os.environ.get("NAS_REQUIRE_CHROMIUM"):
        pytest.fail("NAS_REQUIRE_CHROMIUM is set but no Chromium was found")
    pytest.skip("no Chromium on this machine (source .ci/chromium to install Debian's)")


@pytest.mark.e2e
@slow
def test_optuna_dashboard_shows_the_sweep_in_a_real_browser(swept: Swept, tmp_path: Path) -> None:
    """optuna-dashboard's server on the finished sweep's journal file, its pages loaded in
    headless Chromium: the study, its objectives by name and its trials are listed; a
    screenshot is saved ($NAS_TEST_ARTIFACTS, else the test's folder)."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard not installed")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    browser_path = _chromium()
    out, _, _ = swept
    study = load_study(out)

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = make_server("127.0.0.1", 0, dashboard.wsgi(study._storage), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/dashboard"
    shots = Path(os.environ.get("NAS_TEST_ARTIFACTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_text("channel-nas").first.wait_for(timeout=30_000)  # the study list
            page.goto(f"{url}/studies/{study._study_id}/trials")  # a trial's page
            page.get_by_text("run_dir").first.wait_for(timeout=30_000)
            trials = page.inner_text("body")
            page.screenshot(path=str(shots / "optuna-dashboard-trials.png"), full_page=True)
            page.goto(f"{url}/studies/{study._study_id}")  # the Pareto front, axes by name
            page.get_by_text("Objective X:").first.wait_for(timeout=30_000)
            front = page.inner_text("body")
            page.screenshot(path=str(shots / "optuna-dashboard-study.png"), full_page=True)
            browser.close()
    finally:
        server.shutdown()
    for t in study.get_trials(states=[TrialState.COMPLETE]):
        assert f"Trial {t.number}" in trials
    for attr in ("macs_ratio", "widths", "run_dir", "trials/trial-0000"):
        assert attr in trials, attr
    assert "Objective X:\nsearched_val_acc" in front and "Objective Y:\nmacs" in front
    assert (shots / "optuna-dashboard-trials.png").stat().st_size > 10_000


@pytest.mark.e2e
@slow
def test_a_sweep_logs_each_trial_to_tensorboard(swept: Swept) -> None:
    """``--tensorboard``: every complete trial's validation accuracy and MAC ratio at its
    number, and its validation accuracy at its MACs, as trials.csv has them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _, _ = swept
    complete = [r for r in read_csv(out / "trials.csv") if r["state"] == "COMPLETE"]
    by_trial = EventAccumulator(str(out / "tb" / "sweep"))
    by_trial.Reload()
    acc = {e.step: e.value for e in by_trial.Scalars("trials/searched_val_acc")}
    ratio = {e.step: e.value for e in by_trial.Scalars("trials/macs_ratio")}
    assert acc == pytest.approx({int(r["number"]): float(r["searched_val_acc"]) for r in complete})
    assert ratio == pytest.approx({int(r["number"]): float(r["macs_ratio"]) for r in complete})
    by_macs = EventAccumulator(str(out / "tb" / "sweep_by_macs"))
    by_macs.Reload()
    cloud = {e.step: e.value for e in by_macs.Scalars("macs/searched_val_acc")}
    assert cloud == pytest.approx({int(r["macs"]): float(r["searched_val_acc"]) for r in complete})


@pytest.mark.e2e
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
    chosen = [(float(r["macs_ratio"]), float(r["searched_val_acc"])) for r in front]
    assert metrics["val_hypervolume"] == pytest.approx(hypervolume(chosen))

    # the uniform-width curve: one point per budget, at that share of the MACs
    uniform = read_csv(out / "uniform.csv")
    assert [float(u["target"]) for u in uniform] == list(BUDGETS)
    for u in uniform:
        assert abs(float(u["macs_ratio"]) - float(u["target"])) < 0.03
        assert 0 <= float(u["test_acc"]) <= 100
    assert metrics["uniform_hypervolume"] == pytest.approx(
        hypervolume([(float(u["macs_ratio"]), float(u["test_acc"])) for u in uniform])
    )
    # each comes from the supernet of the completed trial with the best validation accuracy
    # at its budget
    for u in uniform:
        at_budget = [r for r in complete if float(r["target_macs"]) == float(u["target"])]
        best = max(at_budget, key=lambda r: (float(r["searched_val_acc"]), -int(r["number"])))
        assert u["supernet_of"] == best["number"]


@pytest.mark.e2e
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
    # BN statistics recalibrated on --calib-images training images, not slices of the baseline
    saved = state_of(out / "uniform" / f"macs-0.3000-{run_dir.name}" / "model.pt")
    _, config = load_search_run(run_dir)
    supernet, _ = load_supernet(run_dir, space, config)
    spec = space.spec(space.uniform_widths_for_macs(0.3))
    batches = take_images(options(out).load(config.seed).train, config.calib_images)
    expected = extract_at(supernet, spec, batches).state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in saved)
    sliced = nas.extract(teacher, spec, nas.channel_order(teacher, space)).state_dict()
    assert not all(torch.equal(saved[k], sliced[k]) for k in saved)


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
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

    for name in ("trial_rows", "uniform_point", "write_csv", "plot_fronts"):
        monkeypatch.setattr(nas.sweep.run, name, spy(name))
    sweep(out, 3, uniform=True)
    assert {name for name, _ in locked} == {
        "trial_rows",
        "uniform_point",
        "write_csv",
        "plot_fronts",
    }
    assert all(is_held for _, is_held in locked), locked
    assert len(read_csv(out / "uniform.csv")) == len(BUDGETS)


# -- resuming ------------------------------------------------------------------------------------
@pytest.mark.e2e
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


@pytest.mark.e2e
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


# -- nas plot pareto -----------------------------------------------------------------------------
@pytest.mark.e2e
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


@pytest.mark.e2e
@slow
def test_the_sweeps_choice_does_not_depend_on_the_test_labels(tmp_path: Path) -> None:
    """Two sweeps that differ only in shuffled test labels choose the same front, the same
    uniform sources and the same trials: the test split chooses nothing."""
    from dataclasses import replace

    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images * 16).clip(0, 255).astype(np.uint8)
    y = digits.target.astype(np.int64)
    arrays = {"x_train": x[:1200], "y_train": y[:1200], "x_test": x[1200:], "y_test": y[1200:]}
    shuffled = dict(arrays)
    shuffled["y_test"] = np.random.default_rng(0).permutation(arrays["y_test"])
    runs = {}
    for name, data in (("true", arrays), ("shuffled", shuffled)):
        np.savez(tmp_path / f"{name}.npz", **data)
        out = tmp_path / name
        options_ = replace(options(out), dataset=f"npz:{tmp_path / f'{name}.npz'}")
        nas.run_sweep(options_, TINY, nas.SweepConfig(trials=3, budgets=BUDGETS))
        runs[name] = out
    first, second = (read_csv(runs[n] / "trials.csv") for n in ("true", "shuffled"))
    keep = ("number", "target_macs", "budget_weight", "tau0", "arch_lr", "searched_val_acc", "macs")
    assert [{k: r[k] for k in keep} for r in first] == [{k: r[k] for k in keep} for r in second]
    assert [r["searched_acc"] for r in first] != [r["searched_acc"] for r in second]
    fronts = [[r["number"] for r in read_csv(runs[n] / "pareto.csv")] for n in runs]
    assert fronts[0] == fronts[1]
    sources = [[u["supernet_of"] for u in read_csv(runs[n] / "uniform.csv")] for n in runs]
    assert sources[0] == sources[1] and len(sources[0]) == len(BUDGETS)


# -- a sweep of latency budgets --------------------------------------------------------------------
@pytest.mark.e2e
@slow
def test_a_latency_sweep_searches_latency_budgets_and_fronts_accuracy_against_latency(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """nas sweep --cost latency (a synthetic table of this process at 1 thread): each budget is
    a ratio of the full network's predicted latency, every trial lands in its band, the front
    trades accuracy against predicted latency, the uniform curve stands at the same latencies,
    and nas plot pareto --cost latency reads it (a MAC sweep it refuses)."""
    from dataclasses import replace

    import search_spaces
    from nas.cost import LatencyCost
    from tests.conftest import synthetic_latency_table

    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    table = synthetic_latency_table(space)
    table = replace(table, env={**table.env, "threads": 1})
    table.save(tmp_path / "table.json")
    cost = LatencyCost(space, table=table)
    out = tmp_path / "run"
    argv = [*cli_sweep(out, "--trials", "3", "--threads", "1", "--arch-lr", "0.3")]
    argv = [a for a in argv if a != "--no-uniform"]
    argv += ["--cost", "latency", "--latency-table", str(tmp_path / "table.json")]
    assert main(argv) == 0, capsys.readouterr().err
    rows = [r for r in read_csv(out / "trials.csv") if r["state"] == "COMPLETE"]
    assert len(rows) == 3 and {float(r["target_latency"]) for r in rows} == set(BUDGETS)
    for r in rows:
        target = float(r["target_latency"]) * cost.full()
        widths = WidthSpec.load(out / r["run_dir"] / "arch.json").widths
        assert float(r["predicted_latency_ms"]) == pytest.approx(cost.exact(dict(widths)))
        assert abs(float(r["predicted_latency_ms"]) / target - 1) <= 0.02
        assert float(r["latency_ms"]) > 0
    front = read_csv(out / "pareto.csv")
    costs = [float(r["predicted_latency_ms"]) for r in front]
    assert costs == sorted(costs) and front
    for a in rows:  # nothing off the front beats a point on it in both
        for b in front:
            better = float(a["searched_val_acc"]) > float(b["searched_val_acc"])
            cheaper = float(a["predicted_latency_ms"]) < float(b["predicted_latency_ms"])
            assert not (better and cheaper)
    uniform = read_csv(out / "uniform.csv")
    assert sorted(round(float(u["predicted_latency_ratio"]), 1) for u in uniform) == [0.3, 0.6]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cost"] == "latency" and 0 < metrics["hypervolume"] <= 1
    png = tmp_path / "p.png"
    capsys.readouterr()
    assert main(["plot", "pareto", str(out), "--cost", "latency", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.e2e
@slow
def test_a_mac_sweep_is_not_plotted_against_latency(
    swept: Swept, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "p.png"
    code = main(["plot", "pareto", str(swept[0]), "--cost", "latency", "--out", str(png)])
    _one_line_error(code, capsys.readouterr().err, "--cost macs")
    assert not png.exists()
