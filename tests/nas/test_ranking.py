"""Predictor-based ranking: sampling, scoring, selection, nas rank and --select predictor."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import search_spaces
from nas.cli import main
from nas.cost import smallest_macs
from nas.engine import TrainConfig
from nas.errors import ConfigError
from nas.io import json_safe
from nas.jobs.common import RunOptions
from nas.jobs.rank import run_rank
from nas.jobs.search import run_search
from nas.selection import (
    RankConfig,
    WidthSampler,
    as_dict,
    sample_pool,
    sample_widths,
    select_with_predictor,
    synflow,
)
from nas.supernet import Supernet, extract_at, width_choices
from nas.width_search import DEFAULT_WIDTH_RATIOS, SEARCH_CHECKPOINT, SearchConfig
from predictors import GraphEncoder, Predictor
from tests.conftest import randomize_bn, small_space

slow = pytest.mark.slow

TINY_SEARCH = SearchConfig(warmup_epochs=1, search_epochs=1, finetune_epochs=1)
TINY_RANK = RankConfig(
    samples=12,
    pool=200,
    top_k=2,
    topk_epochs=1,
    holdout=4,
    holdout_epochs=1,
    holdout_lr=0.05,
    predictor_epochs=5,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _choices(space: search_spaces.SearchSpace) -> dict[str, list[int]]:
    return {u.name: width_choices(u.max_width, DEFAULT_WIDTH_RATIOS) for u in space.units}


def _strict_json(path: Path) -> Any:
    """Parse as strict JSON: NaN/Infinity (which json.dumps writes by default) are refused."""

    def refuse(name: str) -> None:
        raise ValueError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


# -- sampling ------------------------------------------------------------------------------------
def test_band_sampling_stays_in_the_band_and_is_distinct() -> None:
    space = search_spaces.create("resnet20_b")
    encoder = GraphEncoder.for_space(space)
    band = (0.45 * space.macs(), 0.5 * space.macs())
    rows = sample_widths(encoder, _choices(space), 300, torch.Generator().manual_seed(0), band=band)
    assert rows.shape == (300, len(space.units)) and rows.dtype == torch.int64
    assert len({tuple(r.tolist()) for r in rows}) == 300
    for row in rows:
        widths = as_dict(encoder, row)
        assert all(w in _choices(space)[u] for u, w in widths.items())
        assert band[0] <= space.macs(widths) <= band[1]  # exact MACs, the space's formula
    again = sample_widths(
        encoder, _choices(space), 300, torch.Generator().manual_seed(0), band=band
    )
    assert torch.equal(rows, again)  # seeded
    other = sample_widths(
        encoder, _choices(space), 300, torch.Generator().manual_seed(1), band=band
    )
    assert not torch.equal(rows, other)


def test_band_sampling_is_diverse() -> None:
    space = search_spaces.create("resnet56_b")
    encoder = GraphEncoder.for_space(space)
    target = 0.5 * space.macs()
    rows = sample_widths(
        encoder,
        _choices(space),
        1000,
        torch.Generator().manual_seed(0),
        band=(0.98 * target, target),
    )
    for j, unit in enumerate(space.units):  # every unit takes several widths across the pool
        assert len(set(rows[:, j].tolist())) >= 4, unit.name


def test_sampling_excludes_given_rows() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    gen = torch.Generator().manual_seed(0)
    first = sample_widths(encoder, _choices(space), 100, gen)
    second = sample_widths(encoder, _choices(space), 100, gen, exclude=first)
    assert len(second) == 100
    assert not {tuple(r) for r in first.tolist()} & {tuple(r) for r in second.tolist()}


@pytest.mark.parametrize("name", ["resnet20", "resnet20_b", "resnet56_b", "resnet18", "resnet50"])
def test_pool_reaches_every_budget_under_it(name: str) -> None:
    space = small_space(name)
    encoder = GraphEncoder.for_space(space)
    choices = _choices(space)
    full, floor = space.macs(), smallest_macs(space, choices)
    config = RankConfig(pool=1000, top_k=1)
    for target in (floor, 0.1 * full, 0.3 * full, 0.5 * full, 0.8 * full, full):
        if target < floor:
            continue
        pool = sample_pool(encoder, choices, target, 0.02, config)
        macs = encoder.macs(pool)
        assert bool((macs <= target).all()) and bool((macs >= 0.98 * target).all()), target
        assert len({tuple(r) for r in pool.tolist()}) == len(pool)
        if target == floor:  # the band under the smallest network holds only that network
            assert pool.tolist() == [[min(choices[u.name]) for u in space.units]]
        elif target < full:
            assert len(pool) == 1000, (name, target / full)
        else:  # as many as the band holds (few for the small spaces), with the full network
            found = [as_dict(encoder, r) for r in pool]
            assert len(pool) == 1000 or (len(pool) > 1 and space.full_widths() in found)


def _grid_under(sampler: WidthSampler, high: float) -> torch.Tensor:
    """Every assignment of the grid with MACs <= high: MACs grow with each width, so no unit
    goes beyond the widest choice it can take with all other units at their smallest."""
    units = len(sampler.counts)
    ranges = []
    for j in range(units):
        k = 0
        while k + 1 < int(sampler.counts[j]):
            index = torch.zeros(1, units, dtype=torch.int64)
            index[0, j] = k + 1
            if int(sampler.encoder.macs(sampler.widths(index))[0]) > high:
                break
            k += 1
        ranges.append(range(k + 1))
    assert math.prod(len(r) for r in ranges) <= 200_000  # small enough to enumerate
    return sampler.widths(torch.tensor(list(itertools.product(*ranges))))


@pytest.mark.parametrize(
    ("name", "factor"),
    [("resnet20", 1.2), ("resnet20", 1.3), ("resnet20_b", 1.2), ("resnet18", 1.2)],
)
def test_small_bands_near_the_smallest_network_are_sampled_completely(
    name: str, factor: float
) -> None:
    space = search_spaces.create(name)
    encoder = GraphEncoder.for_space(space)
    sampler = WidthSampler(encoder, _choices(space))
    high = factor * sampler.min_macs
    grid = _grid_under(sampler, high)
    macs = encoder.macs(grid)
    truth = {tuple(r) for r in grid[(macs >= 0.98 * high) & (macs <= high)].tolist()}
    found = sampler.sample(10_000, torch.Generator().manual_seed(0), band=(0.98 * high, high))
    assert {tuple(r) for r in found.tolist()} == truth and len(truth) >= 4


def test_small_bands_near_the_full_network_are_sampled_completely() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    choices = _choices(space)
    sampler = WidthSampler(encoder, choices)
    full = space.macs()
    # every assignment within 2 % of the full MACs has each unit among its 4 widest choices
    near = torch.tensor(list(itertools.product(range(4), repeat=len(space.units))))
    all_near = sampler.widths(sampler.counts - 1 - near)
    for ratio in (1.0, 0.99):
        low, high = 0.98 * ratio * full, ratio * full
        macs = encoder.macs(all_near)
        truth = {tuple(r) for r in all_near[(macs >= low) & (macs <= high)].tolist()}
        found = sampler.sample(10_000, torch.Generator().manual_seed(0), band=(low, high))
        assert {tuple(r) for r in found.tolist()} == truth and 10 < len(truth) < 100


@pytest.mark.parametrize(("name", "ratio"), [("resnet20", 0.3), ("resnet56_b", 0.8)])
def test_a_full_pool_at_budgets_rejection_sampling_missed(name: str, ratio: float) -> None:
    space = search_spaces.create(name)
    encoder = GraphEncoder.for_space(space)
    target = ratio * space.macs()
    pool = sample_pool(encoder, _choices(space), target, 0.02, RankConfig())
    assert pool.shape == (10_000, len(space.units))
    macs = encoder.macs(pool)
    assert bool((macs <= target).all() and (macs >= 0.98 * target).all())


def test_unreachable_pool_is_refused_naming_the_search_flags() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    choices = _choices(space)
    floor = smallest_macs(space, choices)
    # below the smallest network, and in a gap of the grid just above it
    for target in (0.99 * floor, 1.05 * floor):
        with pytest.raises(ConfigError) as err:
            sample_pool(encoder, choices, target, 0.02, RankConfig())
        message = str(err.value)
        assert "\n" not in message
        assert all(f in message for f in ("--target-macs", "--tolerance", "--width-ratios"))


def test_uniform_sampling_covers_the_choices() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    rows = sample_widths(encoder, _choices(space), 500, torch.Generator().manual_seed(1))
    assert len({tuple(r) for r in rows.tolist()}) == 500
    for j, unit in enumerate(space.units):
        assert set(rows[:, j].tolist()) == set(_choices(space)[unit.name])


# -- configuration -------------------------------------------------------------------------------
def test_bad_rank_config_is_refused() -> None:
    for bad in (
        RankConfig(samples=5),
        RankConfig(top_k=0),
        RankConfig(pool=3, top_k=5),
        RankConfig(sampling="nope"),
        RankConfig(band=1.5),
        RankConfig(holdout=1),
        RankConfig(holdout=2),
        RankConfig(holdout=-1),
        RankConfig(holdout_lr=0.0),
        RankConfig(holdout_lr=math.nan),
        RankConfig(topk_epochs=-1),
        RankConfig(predictor_layers=9),
    ):
        with pytest.raises(ConfigError):
            bad.validate()
    for good in (RankConfig(holdout=0), RankConfig(holdout=3), RankConfig(top_k=3, pool=3)):
        good.validate()


def test_rank_config_messages_name_the_flags_of_the_command() -> None:
    with pytest.raises(ConfigError, match=r"^--samples must be >= 10, got 5"):
        RankConfig(samples=5).validate()
    with pytest.raises(ConfigError, match=r"^--rank-samples must be >= 10, got 5"):
        SearchConfig(select="predictor", rank_samples=5).validate()
    with pytest.raises(ConfigError, match=r"^--rank-top-k .* --rank-pool 3, got 5"):
        SearchConfig(select="predictor", rank_pool=3, rank_top_k=5).validate()
    with pytest.raises(ConfigError, match=r"^--holdout must be 0 \(off\) or at least 3"):
        RankConfig(holdout=2).validate()
    with pytest.raises(ConfigError, match=r"^--band must be in \(0, 1\), got 2"):
        RankConfig(band=2.0).validate()


def test_json_safe_replaces_non_finite_numbers() -> None:
    data = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": 2, "e": "x"}
    assert json_safe(data) == {"a": None, "b": [1.0, None, {"c": None}], "d": 2, "e": "x"}


# -- proxies and selection -----------------------------------------------------------------------
def test_synflow_grows_with_width_and_leaves_the_global_rng_alone() -> None:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    small = synflow(space, space.uniform_widths(0.25))
    large = synflow(space, space.full_widths())
    assert torch.equal(torch.get_rng_state(), state)
    assert 0 < small < large
    assert synflow(space, space.uniform_widths(0.25)) == small  # seeded


def test_topk_candidates_get_bn_statistics_for_their_own_widths() -> None:
    """At the smallest reachable budget the pool is the smallest network alone. Its labels are
    what it predicts with BN statistics recalibrated for its widths, so without fine-tuning it
    scores 100 % only if it was extracted with those statistics (not with the statistics of the
    last sub-network the supernet scored)."""
    torch.manual_seed(0)
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    model = space.build()
    randomize_bn(model, 0, (1, 8, 8))
    supernet = Supernet(model, space)
    choices = _choices(space)
    gen = torch.Generator().manual_seed(1)
    calibration = [(torch.randn(32, 1, 8, 8, generator=gen), torch.zeros(32)) for _ in range(2)]
    x = torch.randn(128, 1, 8, 8, generator=gen)
    floor = smallest_macs(space, choices)
    smallest = space.spec({u: min(c) for u, c in choices.items()})
    with torch.no_grad():
        labels = extract_at(supernet, smallest, calibration).eval()(x).argmax(1)
    assert len(set(labels.tolist())) > 1
    config = RankConfig(
        samples=10, pool=50, top_k=1, topk_epochs=0, predictor_epochs=2, predictor_hidden=8
    )
    selection = select_with_predictor(
        supernet,
        choices,
        float(floor),
        0.02,
        calibration,
        None,
        [(x, labels)],
        None,
        TrainConfig(epochs=1),
        config,
        progress=False,
    )
    assert selection.pool_size == 1 and selection.spec == smallest
    assert selection.spec.macs() <= floor
    assert selection.candidates[0]["val_acc"] == 100.0


# -- nas rank and nas search --select predictor ---------------------------------------------------
@pytest.fixture(scope="module")
def finished_search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rank") / "run"
    run_search(RunOptions(out_dir=str(out), baseline_epochs=1, progress=False), TINY_SEARCH)
    return out


@slow
def test_rank_on_a_finished_search(finished_search: Path) -> None:
    metrics = run_rank(finished_search, TINY_RANK, progress=False)
    out = finished_search / "rank"
    for name in (
        "predictor.pt",
        "rank_metrics.json",
        "rank_scatter.png",
        "selection.json",
        "arch.json",
        "args.yaml",
    ):
        assert (out / name).is_file(), name
    assert _strict_json(out / "rank_metrics.json") == metrics
    assert set(metrics["correlations"]) == {"gcn", "supernet", "macs", "synflow"}
    for corr in metrics["correlations"].values():
        for value in corr.values():
            assert value is None or -1.0 <= value <= 1.0
    assert len(metrics["holdout"]) == 4 and metrics["holdout_lr"] == 0.05
    assert metrics["samples_scored"] == 12 and metrics["pool_ranked"] == 200
    scored = {tuple(sorted(c["widths"].items())) for c in metrics["holdout"]}
    assert len(scored) == 4
    selection = _strict_json(out / "selection.json")
    assert len(selection["candidates"]) == 2 and selection["rank"]["holdout_lr"] == 0.05
    spec = search_spaces.WidthSpec.load(out / "arch.json")
    target = metrics["target_macs"]
    assert 0.98 * target <= spec.macs() <= target  # under the budget, within the tolerance
    assert metrics["selected_macs"] == spec.macs()
    for c in selection["candidates"]:
        assert 0.98 * target <= c["macs"] <= target
    args = yaml.safe_load((out / "args.yaml").read_text())
    assert args["command"] == "rank" and args["holdout_lr"] == 0.05
    predictor = Predictor.load(out / "predictor.pt")
    assert predictor.space.name == "resnet20"


@slow
def test_undefined_correlations_are_written_as_null(
    finished_search: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nas.selection.evidence.standalone_accuracy", lambda *args, **kwargs: 97.5)
    config = RankConfig(samples=10, pool=50, top_k=1, topk_epochs=0, holdout=3, predictor_epochs=2)
    metrics = run_rank(finished_search, config, out_dir=tmp_path / "r", progress=False)
    written = _strict_json(tmp_path / "r" / "rank_metrics.json")
    assert written == metrics
    assert all(
        v is None for corr in written["correlations"].values() for v in corr.values()
    )  # constant stand-alone accuracies: every correlation is undefined
    assert "null" in written["correlations_note"]


def test_rank_refuses_a_directory_without_a_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-a-run").mkdir()
    code = main(["rank", "--run", str(tmp_path / "not-a-run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not a search run directory" in err and "Traceback" not in err
    assert not (tmp_path / "not-a-run" / "rank").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--holdout", "2"], "--holdout"),
        (["--holdout-lr", "0"], "--holdout-lr"),
        (["--samples", "3"], "--samples"),
        (["--top-k", "20", "--pool", "10"], "--top-k"),
    ],
)
def test_rank_refuses_bad_options_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    code = main(["rank", "--run", str(tmp_path), "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and named in err
    assert list(tmp_path.iterdir()) == []


def _copy_run(finished_search: Path, dest: Path) -> Path:
    shutil.copytree(finished_search, dest, ignore=shutil.ignore_patterns("rank"))
    return dest


def _edit_args(run: Path, **changes: object) -> None:
    args = yaml.safe_load((run / "args.yaml").read_text())
    (run / "args.yaml").write_text(yaml.safe_dump({**args, **changes}))


@slow
def test_rank_refuses_a_mismatched_space(
    finished_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _copy_run(finished_search, tmp_path / "copy")
    _edit_args(copy, space="resnet32")
    code = main(["rank", "--run", str(copy), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "resnet32" in err
    assert not (copy / "rank").exists()


@slow
def test_rank_refuses_an_unfinished_search(
    finished_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _copy_run(finished_search, tmp_path / "copy")
    ckpt = torch.load(copy / SEARCH_CHECKPOINT, weights_only=True)
    assert len(ckpt["records"]) == 2
    ckpt["records"] = ckpt["records"][:1]  # stopped after the warm-up epoch
    torch.save(ckpt, copy / SEARCH_CHECKPOINT)
    code = main(["rank", "--run", str(copy), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has not finished (1 of 2 epochs" in err and "--resume" in err
    assert not (copy / "rank").exists()


@slow
def test_rank_refuses_an_unreachable_budget_before_writing(
    finished_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _copy_run(finished_search, tmp_path / "copy")
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    floor = smallest_macs(space, _choices(space))
    # allowed by the search (within its tolerance of the smallest network), but no network
    # of the width choices is under it
    _edit_args(copy, target_macs=f"{0.8 * floor / space.macs():.6f}", tolerance=0.3)
    code = main(["rank", "--run", str(copy), "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--tolerance" in err
    assert not (tmp_path / "out").exists()


@slow
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


def test_search_with_predictor_refuses_an_empty_pool_band_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the argmax path accepts 1 % under the smallest network (within the 2 % tolerance), but no
    # sub-network lies under that budget: --select predictor would find out after the search
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    floor = smallest_macs(space, SearchConfig().choices(space))
    target = f"{floor * 0.99 / 1e3:.3f}K"
    out = tmp_path / "run"
    argv = ["search", "--select", "predictor", "--target-macs", target, "--out", str(out)]
    code = main([*argv, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no sub-network of the width choices" in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
