"""nas search and nas.width_search.run_search / search(): end to end, resume, options checked
before training (the command line's bad options: tests/test_bad_input.py)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nas.engine.loop
import search_spaces
from nas.cli import main
from nas.cost import count_model_params
from nas.data import DataBundle, TensorLoader
from nas.engine import CHECKPOINT_NAME
from nas.errors import ConfigError
from nas.extraction import load_model
from nas.runs import RunOptions
from nas.selection import SELECTIONS
from nas.width_search import (
    SEARCH_CHECKPOINT,
    SearchConfig,
    SearchRun,
    run_search,
    search,
    search_budget,
    uniform_reference,
)
from search_spaces import SearchSpace, WidthSpec
from tests.nas.conftest import interrupt_on_call, run
from tests.nas.jobs.conftest import _strict_json

slow = pytest.mark.slow  # end-to-end runs (a few seconds each on a CPU)


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

METRIC_KEYS = {
    "baseline_acc",
    "searched_acc",
    "macs",
    "macs_ratio",
    "params",
    "relaxation_gap",
    "search_seconds",
}


# -- resuming ------------------------------------------------------------------------------------
RESUME_CONFIG: dict[str, Any] = {
    "target_macs": "0.5",
    "warmup_epochs": 1,
    "search_epochs": 2,
    "finetune_epochs": 2,
    "population": 4,  # the default chooser, small
    "generations": 1,
}


def run_options(out: Path, *, resume: bool = False) -> RunOptions:
    return RunOptions(
        out_dir=str(out), space="resnet20", baseline_epochs=1, resume=resume, progress=False
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    run_search(run_options(out), SearchConfig(**RESUME_CONFIG))
    return out


def same_state(a: Path, b: Path) -> None:
    sa = torch.load(a / "model.pt", weights_only=True)
    sb = torch.load(b / "model.pt", weights_only=True)
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def summary_without_times(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", encoding="utf-8", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.mark.e2e
@slow
@pytest.mark.parametrize(
    ("phase", "call"),
    [
        ("search", 2),  # after the warm-up epoch's checkpoint
        ("search", 3),  # mid-search: architecture optimiser state in the checkpoint
        ("finetune", 3),  # baseline epoch, fine-tune epoch 1, then interrupted
    ],
)
def test_interrupted_run_resumes_to_the_same_result(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uninterrupted: Path,
    phase: str,
    call: int,
) -> None:
    out = tmp_path / "run"
    if phase == "search":
        monkeypatch.setattr(SearchRun, "epoch", interrupt_on_call(call, SearchRun.epoch))
    else:
        monkeypatch.setattr(
            nas.engine.loop, "_run_epoch", interrupt_on_call(call, nas.engine.loop._run_epoch)
        )
    with pytest.raises(KeyboardInterrupt):
        run_search(run_options(out), SearchConfig(**RESUME_CONFIG))
    monkeypatch.undo()
    assert not (out / "model.pt").exists()  # interrupted before the final network
    state = torch.load(out / SEARCH_CHECKPOINT, weights_only=True)
    assert len(state["records"]) == (call - 1 if phase == "search" else 3)
    if phase == "finetune":
        done = torch.load(out / "finetune" / CHECKPOINT_NAME, weights_only=True)
        assert done["epoch"] == 1

    torch.manual_seed(12345)  # scramble the global RNG: the checkpoints must restore it
    metrics = run_search(run_options(out, resume=True), SearchConfig(**RESUME_CONFIG))

    same_state(out, uninterrupted)
    assert (out / "arch.json").read_text() == (uninterrupted / "arch.json").read_text()
    assert summary_without_times(out) == summary_without_times(uninterrupted)
    reference = json.loads((uninterrupted / "metrics.json").read_text())
    for key in ("baseline_acc", "searched_acc", "macs", "params", "relaxation_gap"):
        assert metrics[key] == reference[key], key


@pytest.mark.e2e
@slow
def test_a_loaded_baseline_gives_the_network_of_a_trained_one(
    tmp_path: Path, uninterrupted: Path
) -> None:
    """``nas search --weights RUN/baseline/model.pt`` finds what the run that trained that
    baseline found (a sweep's trials rely on it)."""
    out = tmp_path / "run"
    options = RunOptions(
        out_dir=str(out),
        weights=str(uninterrupted / "baseline" / "model.pt"),
        baseline_epochs=1,
        progress=False,
    )
    metrics = run_search(options, SearchConfig(**RESUME_CONFIG))
    assert not (out / "baseline" / "summary.csv").exists()  # loaded, not trained
    assert (out / "arch.json").read_text() == (uninterrupted / "arch.json").read_text()
    same_state(out, uninterrupted)
    assert summary_without_times(out) == summary_without_times(uninterrupted)
    reference = json.loads((uninterrupted / "metrics.json").read_text())
    assert metrics["searched_acc"] == reference["searched_acc"]


def test_resume_with_other_options_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"

    def stop(*args: Any, **kwargs: Any) -> nn.Module:
        raise KeyboardInterrupt

    monkeypatch.setattr("nas.width_search.pipeline.train_full", stop)
    with pytest.raises(KeyboardInterrupt):  # interrupted right after args.yaml is written
        run_search(run_options(out), SearchConfig(**RESUME_CONFIG))
    assert (out / "args.yaml").is_file()
    stored = (out / "args.yaml").read_text()
    other = SearchConfig(**(RESUME_CONFIG | {"arch_lr": 0.01}))
    with pytest.raises(ConfigError, match="arch_lr"):
        run_search(run_options(out, resume=True), other)
    assert (out / "args.yaml").read_text() == stored
    with pytest.raises(ConfigError, match="exclude"):
        run_search(
            RunOptions(out_dir=str(out), resume=True, overwrite=True, progress=False),
            SearchConfig(**RESUME_CONFIG),
        )


# -- every option is checked before anything runs ---------------------------------------------
def test_search_refuses_bad_options_before_training(trained: tuple[SearchSpace, nn.Module]) -> None:
    _, model = trained
    bad = SearchConfig(tau0=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--tau0"):
        search(model, [], [], config=bad, progress=False)


# -- the command line ----------------------------------------------------------------------------
CONFIG_FILE = """\
space: resnet20
dataset: digits
baseline_epochs: 1
warmup_epochs: 1
search_epochs: 1
finetune_epochs: 1
target_macs: 0.5
tau0: 3.0
schedule: cosine
"""


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``nas search --config file.yaml`` plus a flag that overrides the file."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "config.yaml").write_text(CONFIG_FILE)
    out = tmp / "run"
    argv = ["search", "--config", str(tmp / "config.yaml"), "--out", str(out)]
    code = main([*argv, "--quiet", "--search-epochs", "2", "--compare"])
    assert code == 0
    return out


@pytest.mark.e2e
@slow
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_cli_search_writes_every_output(cli_run: Path, digits: DataBundle) -> None:
    out = cli_run
    spec = WidthSpec.load(out / "arch.json")
    assert spec.space == "resnet20" and spec.num_classes == 10 and spec.in_channels == 1

    state = torch.load(out / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_model(out)
    assert count_model_params(model) == spec.params()
    assert set(state) == set(model.state_dict())

    scripted = torch.jit.load(str(out / "model.ts"))
    x, _ = next(iter(digits.test))
    with torch.no_grad():
        assert torch.allclose(scripted(x[:16]), model(x[:16]), atol=1e-4, rtol=1e-4)

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= METRIC_KEYS
    assert metrics["macs"] == spec.macs() and metrics["params"] == spec.params()
    assert abs(metrics["macs_ratio"] - 0.5) <= 0.01
    assert 0 <= metrics["searched_acc"] <= 100 and 0 <= metrics["baseline_acc"] <= 100
    assert metrics["search_seconds"] >= 0
    # the search's own diagnostics, measured on the validation split
    assert 0.1 <= metrics["arch_confidence"] <= 1 and metrics["projection_shift"] >= 0
    for key in ("relaxed_val_acc", "argmax_val_acc", "delivered_val_acc", "searched_val_acc"):
        assert 0 <= metrics[key] <= 100, key
    assert metrics["relaxation_gap"] == pytest.approx(
        metrics["relaxed_val_acc"] - metrics["delivered_val_acc"]
    )
    # --compare: the uniform network of the same MACs, fine-tuned the same way
    assert metrics["reference"] == "uniform widths of the same MACs, cut from the same supernet"
    assert abs(metrics["uniform_macs"] / metrics["target_macs"] - 1) <= 0.02  # in the band
    assert 0 <= metrics["uniform_acc"] <= 100 and 0 <= metrics["uniform_val_acc"] <= 100
    uniform = WidthSpec(spec.space, metrics["uniform_widths"], 10, 1, (8, 8))
    ratios = {w / spec.get_space().max_widths[u] for u, w in uniform.widths.items()}
    assert max(ratios) - min(ratios) <= 0.1  # one ratio for every unit (up to rounding)
    with open(out / "uniform" / "summary.csv", encoding="utf-8", newline="") as f:
        uniform_rows = list(csv.DictReader(f))
    with open(out / "finetune" / "summary.csv", encoding="utf-8", newline="") as f:
        searched_rows = list(csv.DictReader(f))
    assert len(uniform_rows) == len(searched_rows) == 1  # the same fine-tuning

    with open(out / "summary.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"epoch", "phase", "tau", "expected_macs", "expected_macs_ratio"} <= set(rows[0])
    assert {"confidence", "entropy", "multiplier"} <= set(rows[0])
    assert [r["phase"] for r in rows] == ["warmup", "search", "search"]  # one per epoch
    assert float(rows[-1]["tau"]) == pytest.approx(0.1)  # cosine down to tau_min
    assert all(float(r["expected_macs"]) > 0 for r in rows)

    assert (out / "args.yaml").is_file()
    for png in ("widths.png", "search_curves.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC, png


@pytest.mark.e2e
@slow
def test_config_file_gives_defaults_and_flags_win(cli_run: Path) -> None:
    args = yaml.safe_load((cli_run / "args.yaml").read_text())
    assert args["command"] == "search"
    assert args["search_epochs"] == 2  # the flag beat the file
    assert args["warmup_epochs"] == 1 and args["finetune_epochs"] == 1
    assert args["baseline_epochs"] == 1
    assert args["tau0"] == 3.0 and args["schedule"] == "cosine"
    assert str(args["target_macs"]) == "0.5"
    assert args["arch_lr"] == SearchConfig().arch_lr  # neither file nor flag: the default
    assert args["out_dir"] == str(cli_run)


@pytest.mark.e2e
@slow
def test_args_yaml_is_accepted_as_config(
    cli_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(cli_run, copy)
    # every recorded option must be accepted, and --resume checks that they all round-trip
    code = main(["search", "--config", str(copy / "args.yaml"), "--out", str(copy), "--resume"])
    _, err = capsys.readouterr()
    assert code == 0, err
    same_state(copy, cli_run)
    assert (copy / "arch.json").read_text() == (cli_run / "arch.json").read_text()


# -- thread count ----------------------------------------------------------------------------
@pytest.mark.e2e
@slow
def test_the_thread_count_is_recorded_and_config_reproduces_the_widths(
    tmp_path: Path, uninterrupted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Float sums in another order make training diverge, so the widths may depend on the
    thread count: a run records its count and ``--config args.yaml`` uses it again."""
    weights = str(uninterrupted / "baseline" / "model.pt")  # the search phase only
    runs = {}
    for threads in (1, 2):
        out = tmp_path / f"threads-{threads}"
        options = RunOptions(out_dir=str(out), weights=weights, threads=threads, progress=False)
        run_search(options, SearchConfig(**RESUME_CONFIG))
        assert yaml.safe_load((out / "args.yaml").read_text())["threads"] == threads
        runs[threads] = WidthSpec.load(out / "arch.json").widths
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a process whose default differs from the recorded count
    try:
        again = tmp_path / "again"
        argv = ["search", "--config", str(tmp_path / "threads-1" / "args.yaml")]
        assert main([*argv, "--out", str(again), "--quiet"]) == 0, capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before  # the job restores the caller's count
    assert yaml.safe_load((again / "args.yaml").read_text())["threads"] == 1
    assert WidthSpec.load(again / "arch.json").widths == runs[1]
    same_state(again, tmp_path / "threads-1")


# -- Python API with a user's own torchvision network -----------------------------------------
@pytest.mark.e2e
@slow
def test_search_of_a_users_torchvision_resnet(digits: DataBundle) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)  # what the space does for small inputs
    model.maxpool = nn.Identity()
    assert isinstance(digits.train, TensorLoader) and isinstance(digits.val, TensorLoader)
    assert isinstance(digits.test, TensorLoader)
    x, y = digits.train.images[:256], digits.train.labels[:256]
    train = DataLoader(
        TensorDataset(x, y),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val = DataLoader(TensorDataset(digits.val.images, digits.val.labels), batch_size=256)
    test = DataLoader(
        TensorDataset(digits.test.images[:128], digits.test.labels[:128]), batch_size=128
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    full_params = count_model_params(model)

    config = SearchConfig(
        target_macs="0.5",
        warmup_epochs=0,
        search_epochs=1,
        finetune_epochs=1,
        select="argmax",  # the user's network is what is tested here, not the chooser
    )
    result = search(model, train, val, test_loader=test, config=config, progress=False)

    assert isinstance(result.model, torchvision.models.ResNet)
    assert result.spec.space == "resnet18"
    assert count_model_params(result.model) < full_params
    assert result.metrics["params"] == count_model_params(result.model)
    assert abs(result.metrics["macs_ratio"] - 0.5) <= 0.02
    assert set(result.metrics) >= METRIC_KEYS
    with torch.no_grad():
        assert result.model.eval()(x[:4]).shape == (4, 10)
    # the user's network keeps its weights, and stays trainable
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert not frozen, f"search() froze the user's model ({len(frozen)} parameters)"


# -- --select predictor --------------------------------------------------------------------------
@pytest.mark.e2e
@slow
@pytest.mark.usefixtures("one_thread")
def test_search_with_predictor_selection(tmp_path: Path) -> None:
    config = SearchConfig(
        warmup_epochs=1,
        search_epochs=1,
        finetune_epochs=1,
        select="predictor",
        rank_samples=12,
        rank_pool=300,
        rank_top_k=2,
    )
    metrics = run_search(
        RunOptions(out_dir=str(tmp_path / "run"), baseline_epochs=1, progress=False), config
    )
    out = tmp_path / "run"
    assert (out / "predictor.pt").is_file() and (out / "selection.json").is_file()
    selection = _strict_json(out / "selection.json")
    assert selection["rank"]["samples"] == 12 and selection["rank"]["pool"] == 300
    assert selection["rank"]["top_k"] == 2 and selection["pool_ranked"] == 300
    spec = search_spaces.WidthSpec.load(out / "arch.json")
    assert dict(spec.widths) in [c["widths"] for c in selection["candidates"]]
    assert 0.5 * 0.98 <= metrics["macs_ratio"] <= 0.5  # under the budget, within the tolerance


# -- --select: every chooser, scored beside uniform width on the supernet -----------------------
SELECT_FLAGS = [
    "--quiet",
    *("--threads", "1"),  # more threads only contend on a busy machine
    *("--baseline-epochs", "1", "--warmup-epochs", "1", "--search-epochs", "1"),
    *("--finetune-epochs", "1", "--calib-images", "200"),
    *("--population", "4", "--generations", "1"),  # evolution
    *("--rank-samples", "10", "--rank-pool", "50", "--rank-top-k", "1"),  # predictor
]

# two widths per unit and a budget near the full network: greedy slimming scores every unit's
# narrowing at each of a few steps; the uniform width of 90 % (14 of 16 channels...) is off the
# grid, so it is never the delivered network
SELECT_BUDGET: dict[str, Any] = {"width_ratios": (0.5, 1.0), "target_macs": "0.9"}
SELECT_BUDGET_FLAGS = ["--width-ratios", "0.5,1", "--target-macs", "0.9"]

SELECT_KEYS = {
    "select",
    "oneshot_val_acc",
    "oneshot_val_loss",
    "uniform_oneshot_val_acc",
    "uniform_oneshot_val_loss",
    "beats_uniform_oneshot",
    "candidates_scored",
    "selection_seconds",
    "stage_width_ratios",
}

NOTHING_BEAT = "on validation nothing beat uniform width"


@pytest.fixture(scope="module")
def baseline_weights(
    trained: tuple[SearchSpace, nn.Module], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The digits baseline (one epoch) as a --weights file: the --select runs share it."""
    _, model = trained
    path = tmp_path_factory.mktemp("baseline") / "full.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.e2e
@slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("method", SELECTIONS.names())
def test_every_chooser_is_scored_beside_the_uniform_width(
    method: str, tmp_path: Path, baseline_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever ``--select`` chose, metrics.json says how it scored on the supernet beside the
    uniform width of the budget, and the printed line says so when it did not beat it."""
    out = tmp_path / "run"
    argv = ["search", "--select", method, "--weights", str(baseline_weights), "--out", str(out)]
    code, printed, err = run(capsys, *argv, *SELECT_FLAGS, *SELECT_BUDGET_FLAGS)
    assert code == 0, err
    metrics = _strict_json(out / "metrics.json")
    assert set(metrics) >= SELECT_KEYS | METRIC_KEYS, SELECT_KEYS - set(metrics)
    assert metrics["select"] == method
    spec = WidthSpec.load(out / "arch.json")
    assert metrics["macs"] == spec.macs()
    arch = json.loads((out / "arch.json").read_text())
    stages = metrics["stage_width_ratios"]
    assert arch["stage_width_ratios"] == pytest.approx(stages, abs=1e-4)  # rounded in arch.json
    # the delivered network lies in the budget's band
    config = SearchConfig(**SELECT_BUDGET)
    assert abs(metrics["macs"] / metrics["target_macs"] - 1) <= config.tolerance, metrics
    # the uniform width and the delivered widths are both scored (once: the cache)
    space = spec.get_space()
    uniform = uniform_reference(search_budget(config, space), config)
    both = 1 if dict(uniform.widths) == dict(spec.widths) else 2
    if method == "argmax":
        assert metrics["candidates_scored"] == both  # nothing else is scored
    else:
        assert metrics["candidates_scored"] >= 2
    if both == 1:
        assert metrics["oneshot_val_loss"] == metrics["uniform_oneshot_val_loss"]
    for key in ("oneshot_val_acc", "uniform_oneshot_val_acc"):
        assert 0 <= metrics[key] <= 100, key
    for key in ("oneshot_val_loss", "uniform_oneshot_val_loss", "selection_seconds"):
        assert metrics[key] >= 0, key
    beats = metrics["beats_uniform_oneshot"]
    assert isinstance(beats, bool)
    assert beats == (metrics["oneshot_val_loss"] < metrics["uniform_oneshot_val_loss"])
    assert (NOTHING_BEAT in printed) == (not beats), printed
    if not beats:
        losses = (metrics["oneshot_val_loss"], metrics["uniform_oneshot_val_loss"])
        assert "(one-shot loss {:.3f} against uniform's {:.3f})".format(*losses) in printed
    assert len(printed.strip().splitlines()) == 1


def _digits_npz(path: Path, *, shuffle_test_labels: bool) -> str:
    """A small digits task as ``npz:PATH`` (NHW floats in [0, 1]): 600 training images, 200
    test images, whose labels are permuted with ``shuffle_test_labels``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    y_test = y[600:800]
    if shuffle_test_labels:
        y_test = np.random.default_rng(0).permutation(y_test)
    np.savez(path, x_train=x[:600], y_train=y[:600], x_test=x[600:800], y_test=y_test)
    return f"npz:{path}"


@pytest.mark.e2e
@slow
@pytest.mark.usefixtures("one_thread")
def test_the_chosen_widths_never_read_the_test_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two datasets identical but for a permutation of the test labels: the search, the
    evolution's choice (on the validation split) and the fine-tuning deliver the same network;
    only the test accuracies differ."""
    runs = {}
    for shuffled in (False, True):
        name = "shuffled" if shuffled else "plain"
        data = _digits_npz(tmp_path / f"{name}.npz", shuffle_test_labels=shuffled)
        out = tmp_path / name
        argv = ["search", "--dataset", data, "--select", "evolution", "--out", str(out)]
        code, _, err = run(capsys, *argv, *SELECT_FLAGS)
        assert code == 0, err
        runs[shuffled] = out
    plain, shuffled_run = runs[False], runs[True]
    assert (plain / "arch.json").read_text() == (shuffled_run / "arch.json").read_text()
    same_state(plain, shuffled_run)
    a = _strict_json(plain / "metrics.json")
    b = _strict_json(shuffled_run / "metrics.json")
    for key in ("oneshot_val_loss", "uniform_oneshot_val_loss", "candidates_scored"):
        assert a[key] == b[key], key
    assert a["baseline_acc"] != b["baseline_acc"]  # the test labels did differ


@pytest.mark.e2e
@slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_per_input_strategy_delivers_its_fine_tuned_conditional_network(
    tmp_path: Path, digits: DataBundle
) -> None:
    """Without --static, conditional-gumbel delivers the conditional network (DIR/conditional/):
    its gates' threshold calibrated into the MAC band, fine-tuned under its gates, MACs per test
    image in metrics.json, no static model.pt, and --compare's uniform twin at its average
    MACs."""
    from nas.engine import evaluate
    from nas.gates.deploy import conditional_macs, load_conditional

    out = tmp_path / "run"
    argv = ["search", "--strategy", "conditional-gumbel", "--target-macs", "0.6"]
    argv += ["--warmup-epochs", "1", "--search-epochs", "3", "--finetune-epochs", "1"]
    argv += ["--baseline-epochs", "1", "--arch-lr", "0.3", "--compare", "--quiet"]
    assert main([*argv, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conditional"] is True and "static_share" not in metrics
    # its gates' threshold calibrated into the band on training images; the test images' average
    # is near it (the same gates, other images)
    assert abs(metrics["calibrated_macs_ratio"] / 0.6 - 1) <= 0.02, metrics
    assert abs(metrics["avg_macs_ratio"] / 0.6 - 1) <= 0.05, metrics
    assert not (out / "model.pt").exists()  # nothing static was delivered
    # --no-calibrate-gates: the gates as trained (at 45 % of the MACs on this run)
    raw = tmp_path / "raw"
    argv[argv.index("--compare")] = "--no-calibrate-gates"
    assert main([*argv, "--out", str(raw)]) == 0
    raw_metrics = json.loads((raw / "metrics.json").read_text())
    assert "gate_offset" not in raw_metrics
    assert abs(raw_metrics["avg_macs_ratio"] / 0.6 - 1) > 0.05, raw_metrics
    model = load_conditional(out / "conditional")
    space = WidthSpec.load(out / "conditional" / "arch.json").get_space()
    macs = conditional_macs(model, space, digits.test, torch.device("cpu")).double()
    assert metrics["macs"] == metrics["avg_macs"] == pytest.approx(float(macs.mean()))
    assert metrics["p95_macs"] == pytest.approx(float(macs.quantile(0.95)))
    assert metrics["p50_macs"] <= metrics["p95_macs"] <= space.macs() and metrics["gate_macs"] > 0
    # the saved network is the fine-tuned one: it scores what metrics.json says
    acc = evaluate(model, digits.test).accuracy
    assert (
        acc == pytest.approx(metrics["searched_acc"]) == pytest.approx(metrics["conditional_acc"])
    )
    assert (out / "finetune" / "summary.csv").is_file() and (out / "uniform").is_dir()
    assert abs(metrics["uniform_macs"] / metrics["target_macs"] - 1) <= 0.02
