"""The search end to end: the budget is met, runs resume to the same result, the command line
refuses bad options cleanly, ``--config`` files work, and the outputs are complete.

The end-to-end runs use the embedded 8x8 digits and a handful of epochs (seconds each).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
import yaml
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import nas.engine.loop
import search_spaces
from nas.cli import main
from nas.cost import count_model_params
from nas.data import DataBundle, TensorLoader, load_data
from nas.engine import CHECKPOINT_NAME, TrainConfig, evaluate, train_model
from nas.errors import ConfigError
from nas.extraction import load_model
from nas.gates import STRATEGIES, GateStrategy, WidthGumbel, register_strategy
from nas.jobs.common import RunOptions
from nas.jobs.search import run_search, search
from nas.supernet import recalibrate_bn
from nas.width_search import (
    MIN_TOLERANCE,
    SEARCH_CHECKPOINT,
    SearchConfig,
    extract_searched,
    search_widths,
    start_run,
    warm_up,
)
from nas.width_search import SearchRun as _SearchRun
from search_spaces import SearchSpace, WidthSpec

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


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_data("digits", seed=0)


@pytest.fixture(scope="module")
def val(digits: DataBundle) -> TensorLoader:
    assert isinstance(digits.val, TensorLoader)
    return digits.val


@pytest.fixture(scope="module")
def trained(digits: DataBundle) -> tuple[SearchSpace, nn.Module]:
    """ResNet-20 for digits after one epoch of training."""
    space = search_spaces.create(
        "resnet20",
        num_classes=digits.num_classes,
        in_channels=digits.in_channels,
        input_size=digits.input_size,
    )
    torch.manual_seed(0)
    model = space.build()
    train_model(model, digits.train, config=TrainConfig(epochs=1), progress=False)
    return space, model.eval()


def tiny(**changes: Any) -> SearchConfig:
    base: dict[str, Any] = {"warmup_epochs": 1, "search_epochs": 2, "finetune_epochs": 1}
    return SearchConfig(**(base | changes))


# -- the budget is met ---------------------------------------------------------------------------
@slow
@pytest.mark.parametrize("target", [0.5, 0.3])
def test_search_widths_meets_the_budget(
    digits: DataBundle, val: TensorLoader, trained: tuple[SearchSpace, nn.Module], target: float
) -> None:
    space, model = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = tiny(target_macs=str(target))
    outcome = search_widths(model, space, digits.train, val, config=config, progress=False)

    macs = space.macs(outcome.spec.widths)
    goal = target * space.macs()
    assert goal * 0.98 <= macs <= goal * 1.02, macs / space.macs()
    assert outcome.spec.space == "resnet20" and outcome.spec.macs() == macs
    # one record per epoch, warm-up first; the temperature ends at tau_min
    assert [r.epoch for r in outcome.records] == [1, 2, 3]
    assert [r.phase for r in outcome.records] == ["warmup", "search", "search"]
    assert outcome.records[0].arch_loss is None and outcome.records[-1].arch_loss is not None
    assert outcome.records[-1].tau == pytest.approx(config.tau_min)
    assert all(0 < r.expected_macs_ratio <= 1 for r in outcome.records)
    assert outcome.relaxation_gap == outcome.relaxed_acc - outcome.discrete_acc
    # the user's network is left untouched
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())

    # the extracted network is the supernet at the found widths, really that small
    small = extract_searched(outcome).eval()
    assert count_model_params(small) == outcome.spec.params()
    x, _ = next(iter(val))
    supernet = outcome.supernet.eval()
    with torch.no_grad():
        supernet.set_widths(outcome.spec.widths)
        reference = supernet(x)
        supernet.set_masks(None)
        assert (small(x) - reference).abs().max().item() <= 1e-4


# -- the bi-level step: weights on the training split, logits on the validation split ---------
def test_each_optimiser_steps_on_its_own_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weight steps see training batches and move only the weights; architecture steps see
    validation batches (cycled) and move only the logits; warm-up epochs have no arch step."""
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    torch.manual_seed(0)
    model = space.build().eval()
    g = torch.Generator().manual_seed(0)

    def batches(n: int) -> list[tuple[Tensor, Tensor]]:
        return [
            (torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g))
            for _ in range(n)
        ]

    train, val = batches(3), batches(2)
    run = start_run(model, space, train, val, tiny(warmup_epochs=1, search_epochs=1))

    def origin(x: Tensor) -> str:
        for split, data in (("train", train), ("val", val)):
            for i, (xb, _) in enumerate(data):
                if torch.equal(x, xb):
                    return f"{split}{i}"
        return "other"

    current: list[str] = []  # the step running now
    forwards: list[tuple[str, str]] = []  # (step, batch) of every supernet pass inside a step
    supernet_forward = run.supernet.forward

    def spy_forward(x: Tensor) -> Tensor:
        if current:
            forwards.append((current[0], origin(x)))
        return supernet_forward(x)

    def snapshot(params: Any) -> list[Tensor]:
        return [p.detach().clone() for p in params]

    def moved(before: list[Tensor], after: list[Tensor]) -> bool:
        return any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))

    steps: list[tuple[str, bool, bool]] = []  # (step, weights moved, logits moved)

    def spy(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: _SearchRun, *args: Any) -> Any:
            w0, a0 = snapshot(self.supernet.weights()), snapshot(self.strategy.arch_parameters())
            current.append(name)
            try:
                out = method(self, *args)
            finally:
                current.clear()
            w1, a1 = snapshot(self.supernet.weights()), snapshot(self.strategy.arch_parameters())
            steps.append((name, moved(w0, w1), moved(a0, a1)))
            return out

        return wrapper

    monkeypatch.setattr(run.supernet, "forward", spy_forward)
    monkeypatch.setattr(_SearchRun, "_weight_step", spy("weight", _SearchRun._weight_step))
    monkeypatch.setattr(_SearchRun, "_arch_step", spy("arch", _SearchRun._arch_step))

    run.epoch(1)  # warm-up
    assert steps == [("weight", True, False)] * 3
    assert forwards == [("weight", "train0"), ("weight", "train1"), ("weight", "train2")]
    steps.clear()
    forwards.clear()
    run.epoch(2)  # search: weight step, then arch step, per training batch
    assert steps == [("weight", True, False), ("arch", False, True)] * 3
    assert forwards == [
        ("weight", "train0"),
        ("arch", "val0"),
        ("weight", "train1"),
        ("arch", "val1"),
        ("weight", "train2"),
        ("arch", "val0"),  # the validation split is cycled
    ]


def test_relaxed_and_discrete_accuracies_are_measured_in_their_own_modes(
    digits: DataBundle, val: TensorLoader, trained: tuple[SearchSpace, nn.Module]
) -> None:
    """Logits whose argmax is the narrowest width while softmax(logits / tau) mixes all
    widths: the relaxed accuracy is the supernet with the mixed masks, the discrete one the
    supernet at the argmax widths (each with BN recalibrated), and they really differ."""
    space, model = trained
    config = tiny()
    run = start_run(model, space, digits.train, val, config)
    strategy = run.strategy
    assert isinstance(strategy, WidthGumbel)
    with torch.no_grad():
        for logits in strategy.logits:
            logits.copy_(torch.tensor([1.0] + [0.9] * (logits.numel() - 1)))
    outcome = run.finish(space)  # no epoch ran: evaluated at tau_min
    tau = config.tau_min
    narrow = {u: c[0] for u, c in strategy.choices.items()}
    assert outcome.argmax_widths == narrow

    def nested(u: str) -> Tensor:
        choices = torch.tensor(strategy.choices[u])
        return (torch.arange(space.max_widths[u])[None, :] < choices[:, None]).float()

    relaxed_masks, weights = {}, []
    for u, logits in zip(strategy.units, strategy.logits, strict=True):
        w = torch.softmax(logits.detach() / tau, dim=0)
        weights.append(w)
        relaxed_masks[u] = w @ nested(u)
    assert all(0.15 < float(w[0]) < 0.5 for w in weights)  # really mixed, argmax the narrowest
    discrete_masks = {u: (torch.arange(space.max_widths[u]) < narrow[u]).float() for u in narrow}

    def accuracy_with(masks: dict[str, Tensor]) -> float:
        with torch.no_grad():
            outcome.supernet.set_masks(masks)
            recalibrate_bn(outcome.supernet, outcome.calibration)
            acc = evaluate(outcome.supernet, val).accuracy
            outcome.supernet.set_masks(None)
        return acc

    relaxed, discrete = accuracy_with(relaxed_masks), accuracy_with(discrete_masks)
    assert relaxed - discrete > 5, (relaxed, discrete)  # two really different networks
    assert outcome.relaxed_acc == relaxed
    assert outcome.discrete_acc == discrete
    assert outcome.relaxation_gap == relaxed - discrete


# -- another gate strategy slots in -------------------------------------------------------------
class ChannelGates(GateStrategy):
    """Per-channel sigmoid gates with logistic noise and a gate-activity regulariser: another
    parameterisation than width-gumbel, through the unchanged search loop, budget and
    extraction."""

    name = "test-channel-gates"

    def __init__(self, space: SearchSpace, choices: Mapping[str, Sequence[int]]) -> None:
        super().__init__(space, choices)
        self.gates = nn.ParameterDict(
            {
                u.replace(".", "_"): nn.Parameter(torch.full((space.max_widths[u],), 2.0))
                for u in self.units
            }
        )

    def _logits(self, unit: str) -> Tensor:
        return self.gates[unit.replace(".", "_")]

    def masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        out = {}
        for u in self.units:
            lg = self._logits(u)
            if mode == "sample":
                noise = torch.rand_like(lg).clamp(1e-6, 1 - 1e-6)
                lg = lg + noise.log() - (1 - noise).log()
            soft = torch.sigmoid(lg / tau)
            out[u] = soft if mode in ("sample", "relaxed") else (lg > 0).float()
        return out

    def expected_widths(self) -> dict[str, Tensor]:
        return {u: torch.sigmoid(self._logits(u)).sum() for u in self.units}

    def choice_log_probs(self) -> dict[str, Tensor]:
        widths = {u: float(w.detach()) for u, w in self.expected_widths().items()}
        return {
            u: torch.log_softmax(-torch.tensor([(c - widths[u]) ** 2 for c in self.choices[u]]), 0)
            for u in self.units
        }

    def regularizer(self) -> Tensor:
        return 1e-3 * torch.stack([torch.sigmoid(self._logits(u)).mean() for u in self.units]).sum()


@slow
def test_a_new_gate_strategy_runs_through_the_unchanged_search(
    monkeypatch: pytest.MonkeyPatch,
    digits: DataBundle,
    val: TensorLoader,
    trained: tuple[SearchSpace, nn.Module],
) -> None:
    monkeypatch.setattr(STRATEGIES, "_entries", dict(STRATEGIES._entries))
    register_strategy(ChannelGates.name, ChannelGates)
    space, model = trained
    config = tiny(strategy=ChannelGates.name, target_macs="0.4")
    outcome = search_widths(model, space, digits.train, val, config=config, progress=False)

    assert isinstance(outcome.strategy, ChannelGates)
    moved = [not torch.equal(p, torch.full_like(p, 2.0)) for p in outcome.strategy.parameters()]
    assert all(moved)  # the architecture step trained the gates
    assert abs(outcome.spec.macs_ratio() / 0.4 - 1) <= config.tolerance  # budget and projection
    small = extract_searched(outcome)  # extraction as for width-gumbel
    assert count_model_params(small) == outcome.spec.params()


# -- resuming ------------------------------------------------------------------------------------
RESUME_CONFIG: dict[str, Any] = {
    "target_macs": "0.5",
    "warmup_epochs": 1,
    "search_epochs": 2,
    "finetune_epochs": 2,
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


def interrupt_on_call(n: int, method: Callable[..., Any]) -> Callable[..., Any]:
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return method(*args, **kwargs)

    return wrapper


def same_state(a: Path, b: Path) -> None:
    sa = torch.load(a / "model.pt", weights_only=True)
    sb = torch.load(b / "model.pt", weights_only=True)
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def summary_without_times(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", encoding="utf-8", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


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
        monkeypatch.setattr(_SearchRun, "epoch", interrupt_on_call(call, _SearchRun.epoch))
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

    monkeypatch.setattr("nas.jobs.search.train_full", stop)
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


def test_search_checkpoint_refuses_other_search_options(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    digits: DataBundle,
    val: TensorLoader,
    trained: tuple[SearchSpace, nn.Module],
) -> None:
    space, model = trained
    config = tiny(warmup_epochs=1, search_epochs=1)
    monkeypatch.setattr(_SearchRun, "epoch", interrupt_on_call(2, _SearchRun.epoch))
    with pytest.raises(KeyboardInterrupt):
        search_widths(
            model,
            space,
            digits.train,
            val,
            config=config,
            out_dir=tmp_path,
            progress=False,
        )
    monkeypatch.undo()
    assert (tmp_path / SEARCH_CHECKPOINT).is_file()
    other = tiny(warmup_epochs=1, search_epochs=1, budget_weight=1.0)
    with pytest.raises(ConfigError, match="other search options"):
        search_widths(
            model,
            space,
            digits.train,
            val,
            config=other,
            out_dir=tmp_path,
            resume=True,
            progress=False,
        )


# -- a shared warm-up (nas sweep) ---------------------------------------------------------------
def fresh_loaders() -> tuple[Any, Any]:
    data = load_data("digits", seed=0)
    return data.train, data.val


def no_seconds(outcome: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in outcome.records]


@slow
def test_a_shared_warm_up_gives_the_result_of_a_search_alone(
    tmp_path: Path, trained: tuple[SearchSpace, nn.Module]
) -> None:
    space, model = trained
    base = tiny(warmup_epochs=1, search_epochs=1)
    path = warm_up(
        model, space, *fresh_loaders(), config=base, path=tmp_path / "w.pt", progress=False
    )
    state = torch.load(path, weights_only=True)
    assert [r["phase"] for r in state["records"]] == ["warmup"]

    # a search with another target, temperatures and architecture optimiser shares it
    changes = {"target_macs": "0.3", "tau0": 2.0, "arch_lr": 0.01, "hard": True}
    config = tiny(warmup_epochs=1, search_epochs=1, **changes)
    shared = search_widths(
        model, space, *fresh_loaders(), config=config, warmup=path, progress=False
    )
    alone = search_widths(model, space, *fresh_loaders(), config=config, progress=False)
    assert shared.spec == alone.spec
    assert no_seconds(shared) == no_seconds(alone)
    assert shared.records[0].tau == 2.0 and shared.records[0].phase == "warmup"
    a, b = shared.supernet.model.state_dict(), alone.supernet.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(
        torch.equal(x, y)
        for x, y in zip(shared.strategy.parameters(), alone.strategy.parameters(), strict=True)
    )

    # a search whose warm-up would differ (other weight lr, other warm-up length) refuses it
    for other in (tiny(warmup_epochs=1, search_epochs=1, lr=0.01), tiny(warmup_epochs=2)):
        with pytest.raises(ConfigError, match="warm-up"):
            search_widths(model, space, *fresh_loaders(), config=other, warmup=path, progress=False)


# -- every option is checked before anything runs ---------------------------------------------
BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    # wrong types, as a --config file or a Python caller can pass them
    ({"tau0": [1, 2]}, "--tau0"),
    ({"width_ratios": 0.5}, "--width-ratios"),
    ({"width_ratios": "0.5,1"}, "--width-ratios"),
    ({"width_ratios": ()}, "--width-ratios"),
    ({"width_ratios": (0.5, None)}, "--width-ratios"),
    ({"lr": None}, "--lr"),
    ({"lr": "0.1"}, "--lr"),
    ({"search_epochs": None}, "--search-epochs"),
    ({"search_epochs": 2.5}, "--search-epochs"),
    ({"warmup_epochs": True}, "--warmup-epochs"),
    ({"hard": 1}, "--hard"),
    ({"from_scratch": "no"}, "--from-scratch"),
    ({"strategy": None}, "--strategy"),
    ({"target_macs": None}, "--target-macs"),
    ({"rank_pool": 1.5}, "--rank-pool"),
    ({"seed": "0"}, "--seed"),
    # NaN, infinities and out-of-range values
    ({"budget_weight": math.nan}, "--budget-weight"),
    ({"tau0": math.inf}, "--tau0"),
    ({"lr": math.inf}, "--lr"),
    ({"arch_lr": 0.0}, "--arch-lr"),
    ({"finetune_lr": -1.0}, "--finetune-lr"),
    ({"arch_weight_decay": -1.0}, "--arch-weight-decay"),
    ({"weight_decay": -1e-4}, "--weight-decay"),
    ({"momentum": 1.0}, "--momentum"),
    ({"budget_band": 0.0}, "--budget-band"),
    ({"budget_band": 3.0}, "--budget-band"),
    ({"tolerance": MIN_TOLERANCE / 5}, "--tolerance"),
    ({"tolerance": 1.0}, "--tolerance"),
    ({"kd_alpha": 1.5}, "--kd-alpha"),
    ({"kd_temperature": 0.0}, "--kd-temperature"),
    ({"width_ratios": (0.5, 1.5)}, "--width-ratios"),
    ({"search_epochs": 0}, "--search-epochs"),
    ({"from_scratch": True, "finetune_epochs": 0}, "--from-scratch"),
    ({"select": "predictor", "rank_samples": 5}, "--rank-samples"),
    ({"select": "predictor", "rank_top_k": 20, "rank_pool": 10}, "--rank-top-k"),
]


@pytest.mark.parametrize(("changes", "flag"), BAD_VALUES, ids=[str(c) for c, _ in BAD_VALUES])
def test_bad_option_values_are_one_line_config_errors(changes: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag) as info:
        SearchConfig(**changes).validate()
    assert len(str(info.value).splitlines()) == 1


def test_every_option_is_type_checked() -> None:
    """A value of the wrong type in any field (a new field included) is a ConfigError that
    names its flag, never a TypeError later in the run."""
    for f in fields(SearchConfig):
        with pytest.raises(ConfigError, match="--" + f.name.replace("_", "-")):
            wrong: dict[str, Any] = {f.name: object()}
            SearchConfig(**wrong).validate()


def test_valid_values_of_other_types_are_accepted() -> None:
    # ints where numbers are expected, a list of ratios, plain SGD, a numeric target
    ratios: Any = [0.5, 1]
    SearchConfig(lr=1, tau0=5, tau_min=1, width_ratios=ratios, momentum=0).validate()
    SearchConfig(target_macs=0.5, tolerance=MIN_TOLERANCE).validate()  # type: ignore[arg-type]
    SearchConfig(from_scratch=True, finetune_epochs=1).validate()
    SearchConfig(select="predictor", rank_samples=10, rank_pool=5, rank_top_k=5).validate()
    with pytest.raises(ConfigError, match="--rank-samples"):  # checked even when unused
        SearchConfig(rank_samples=0).validate()


def test_search_refuses_bad_options_before_training(trained: tuple[SearchSpace, nn.Module]) -> None:
    _, model = trained
    bad = SearchConfig(tau0=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="--tau0"):
        search(model, [], [], config=bad, progress=False)


# -- the command line ----------------------------------------------------------------------------
FAST_FLAGS = [
    "--quiet",
    "--baseline-epochs",
    "1",
    "--warmup-epochs",
    "0",
    "--search-epochs",
    "1",
    "--finetune-epochs",
    "0",
]


def _bad_search_cases(tmp: Path) -> list[tuple[list[str], str]]:
    (tmp / "unknown.yaml").write_text("search_epochs: 1\nfrobnicate: 3\n")
    (tmp / "list.yaml").write_text("- 1\n- 2\n")
    (tmp / "broken.yaml").write_text("search_epochs: [1,\n")
    return [
        (["--target-macs", "0"], "target-macs"),
        (["--target-macs", "1.5"], "target-macs"),
        (["--target-macs", "0.001"], "smallest"),
        (["--target-macs", "10G"], "target-macs"),
        (["--target-macs", "lots"], "target-macs"),
        (["--strategy", "nope"], "nope"),
        (["--schedule", "nope"], "nope"),
        (["--tau0", "0.05", "--tau-min", "0.1"], "--tau-min"),
        (["--tau0", "inf"], "--tau0"),
        (["--lr", "inf"], "--lr"),
        (["--budget-weight", "nan"], "--budget-weight"),
        (["--budget-band", "-1"], "--budget-band"),
        (["--budget-band", "3"], "--budget-band"),
        (["--arch-weight-decay", "-1"], "--arch-weight-decay"),
        (["--weight-decay", "-1"], "--weight-decay"),
        (["--momentum", "1"], "--momentum"),
        (["--kd-alpha", "1.5"], "--kd-alpha"),
        (["--kd-temperature", "0"], "--kd-temperature"),
        (["--tolerance", "0.001"], "--tolerance"),
        (["--from-scratch"], "--from-scratch"),  # with FAST_FLAGS' --finetune-epochs 0
        (["--select", "predictor", "--rank-samples", "5"], "--rank-samples"),
        (["--select", "predictor", "--rank-top-k", "20", "--rank-pool", "10"], "--rank-top-k"),
        (["--width-ratios", "0,2"], "ratios"),
        (["--space", "resnet57"], "resnet57"),
        (["--resume", "--overwrite"], "exclude"),
        (["--config", str(tmp / "missing.yaml")], "missing.yaml"),
        (["--config", str(tmp / "unknown.yaml")], "frobnicate"),
        (["--config", str(tmp / "list.yaml")], "mapping"),
        (["--config", str(tmp / "broken.yaml")], "broken.yaml"),
    ]


def test_bad_search_options_are_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new"
    for extra, fragment in _bad_search_cases(tmp_path):
        argv = ["search", "--out", str(out), *FAST_FLAGS, *extra]
        code = main(argv)
        _, err = capsys.readouterr()
        assert code == 2, (extra, err)
        assert len(err.strip().splitlines()) == 1, (extra, err)
        assert "Traceback" not in err and "error" in err, (extra, err)
        assert fragment in err, (extra, err)
        assert not out.exists(), extra  # nothing written for a run that cannot start


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
    code = main([*argv, "--quiet", "--search-epochs", "2"])
    assert code == 0
    return out


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

    with open(out / "summary.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"epoch", "phase", "tau", "expected_macs", "expected_macs_ratio"} <= set(rows[0])
    assert [r["phase"] for r in rows] == ["warmup", "search", "search"]  # one per epoch
    assert float(rows[-1]["tau"]) == pytest.approx(0.1)  # cosine down to tau_min
    assert all(float(r["expected_macs"]) > 0 for r in rows)

    assert (out / "args.yaml").is_file()
    for png in ("widths.png", "search_curves.png"):
        assert (out / png).read_bytes()[:8] == PNG_MAGIC, png


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


# -- Python API with a user's own torchvision network -----------------------------------------
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

    config = SearchConfig(target_macs="0.5", warmup_epochs=0, search_epochs=1, finetune_epochs=1)
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
