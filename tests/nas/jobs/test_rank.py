"""nas rank (nas.width_search.run_rank) on a finished search, and its refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

import search_spaces
from nas.cli import main
from nas.cost import smallest_macs
from nas.engine import EvalResult
from nas.runs import RunOptions
from nas.selection import RankConfig
from nas.width_search import SEARCH_CHECKPOINT, SearchConfig, run_rank, run_search
from predictors import Predictor
from tests.nas.conftest import choices_of as _choices
from tests.nas.jobs.conftest import _strict_json

slow = pytest.mark.slow

pytestmark = pytest.mark.usefixtures("one_thread")


TINY_SEARCH = SearchConfig(
    warmup_epochs=1, search_epochs=1, finetune_epochs=1, population=4, generations=1
)

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


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rank") / "run"
    run_search(RunOptions(out_dir=str(out), baseline_epochs=1, progress=False), TINY_SEARCH)
    return out


@pytest.mark.e2e
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
    assert metrics["holdout_epochs"] == 1
    assert metrics["samples_scored"] == 12 and metrics["pool_ranked"] == 200
    scored = {tuple(sorted(c["widths"].items())) for c in metrics["holdout"]}
    assert len(scored) == 4
    # the truth: held-out networks where the selection ranks (the pool band under the budget),
    # each fine-tuned twice (two seeds); their agreement is the noise ceiling
    target = metrics["target_macs"]
    for row in metrics["holdout"]:
        assert 0.98 * target <= row["macs"] <= target
        assert row["true_loss"] > 0 and row["true_loss_second_seed"] > 0
        assert row["true_loss"] != row["true_loss_second_seed"]  # really another seed
    ceiling = metrics["noise_ceiling"]
    assert set(ceiling) == {"kendall_tau", "spearman"}
    assert all(v is None or -1.0 <= v <= 1.0 for v in ceiling.values())
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


@pytest.mark.e2e
@slow
def test_undefined_correlations_are_written_as_null(
    finished_search: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "nas.selection.evidence.delivered_quality",
        lambda *args, **kwargs: EvalResult(accuracy=97.5, loss=0.1, count=10),
    )
    config = RankConfig(samples=10, pool=50, top_k=1, topk_epochs=0, holdout=3, predictor_epochs=2)
    metrics = run_rank(finished_search, config, out_dir=tmp_path / "r", progress=False)
    written = _strict_json(tmp_path / "r" / "rank_metrics.json")
    assert written == metrics
    assert all(
        v is None for corr in written["correlations"].values() for v in corr.values()
    )  # constant held-out quality: every correlation is undefined
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


@pytest.mark.e2e
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


@pytest.mark.e2e
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


@pytest.mark.e2e
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
