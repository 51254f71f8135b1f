"""Predictor-based ranking: sampling, scoring, selection, nas rank and --select predictor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import search_spaces
from nas.cli import main
from nas.ranking import RankConfig, as_dict, run_rank, sample_widths, synflow
from nas.search import SearchConfig
from nas.supernet import DEFAULT_WIDTH_RATIOS, width_choices
from nas.workflows import RunOptions, run_search
from predictors import GraphEncoder, Predictor, PredictorConfig

slow = pytest.mark.slow

TINY_SEARCH = SearchConfig(warmup_epochs=1, search_epochs=1, finetune_epochs=1)
TINY_RANK = RankConfig(
    samples=12,
    pool=200,
    top_k=2,
    topk_epochs=1,
    holdout=4,
    holdout_epochs=1,
    predictor=PredictorConfig(epochs=5),
)


def _choices(space: search_spaces.SearchSpace) -> dict[str, list[int]]:
    return {u.name: width_choices(u.max_width, DEFAULT_WIDTH_RATIOS) for u in space.units}


def test_band_sampling_stays_in_the_band_and_is_distinct() -> None:
    space = search_spaces.create("resnet20_b")
    encoder = GraphEncoder.for_space(space)
    target = 0.5 * space.macs()
    rows = sample_widths(
        encoder, _choices(space), 300, torch.Generator().manual_seed(0), target=target, band=0.1
    )
    assert rows.shape == (300, len(space.units))
    assert len({tuple(r.tolist()) for r in rows}) == 300
    for row in rows[:50]:
        macs = space.macs(as_dict(encoder, row))
        assert 0.9 * target <= macs <= 1.1 * target
    again = sample_widths(
        encoder, _choices(space), 300, torch.Generator().manual_seed(0), target=target, band=0.1
    )
    assert torch.equal(rows, again)  # seeded


def test_uniform_sampling_covers_the_choices() -> None:
    space = search_spaces.create("resnet20")
    encoder = GraphEncoder.for_space(space)
    rows = sample_widths(encoder, _choices(space), 500, torch.Generator().manual_seed(1))
    first = space.units[0]
    assert set(rows[:, 0].tolist()) == set(_choices(space)[first.name])


def test_synflow_grows_with_width() -> None:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    small = synflow(space, space.uniform_widths(0.25))
    large = synflow(space, space.full_widths())
    assert 0 < small < large


def test_bad_rank_config_is_refused() -> None:
    from nas.errors import ConfigError

    for bad in (
        RankConfig(samples=5),
        RankConfig(top_k=0),
        RankConfig(pool=3, top_k=5),
        RankConfig(sampling="nope"),
        RankConfig(band=1.5),
        RankConfig(predictor=PredictorConfig(layers=9)),
    ):
        with pytest.raises(ConfigError):
            bad.validate()


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
    assert set(metrics["correlations"]) == {"gcn", "supernet", "macs", "synflow"}
    for corr in metrics["correlations"].values():
        assert -1.0 <= corr["kendall_tau"] <= 1.0
    assert len(metrics["holdout"]) == 4
    selection = json.loads((out / "selection.json").read_text())
    assert len(selection["candidates"]) == 2
    space = search_spaces.WidthSpec.load(out / "arch.json")
    assert abs(space.macs_ratio() - 0.5) <= 0.5 * 0.02 + 1e-9  # within the search tolerance
    predictor = Predictor.load(out / "predictor.pt")
    assert predictor.space.name == "resnet20"


def test_rank_refuses_a_directory_without_a_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-a-run").mkdir()
    code = main(["rank", "--run", str(tmp_path / "not-a-run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "not a search run directory" in err and "Traceback" not in err
    assert not (tmp_path / "not-a-run" / "rank").exists()


@slow
def test_rank_refuses_a_mismatched_space(
    finished_search: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    import yaml

    copy = tmp_path / "copy"
    shutil.copytree(finished_search, copy, ignore=shutil.ignore_patterns("rank"))
    args = yaml.safe_load((copy / "args.yaml").read_text())
    args["space"] = "resnet32"
    (copy / "args.yaml").write_text(yaml.safe_dump(args))
    code = main(["rank", "--run", str(copy), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "resnet32" in err
    assert not (copy / "rank").exists()


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
    chosen = json.loads((out / "selection.json").read_text())["candidates"]
    spec = search_spaces.WidthSpec.load(out / "arch.json")
    assert dict(spec.widths) in [c["widths"] for c in chosen]
    assert abs(metrics["macs_ratio"] - 0.5) <= 0.01 + 1e-9
