"""``nas criteria compare``: per-unit correlations between criteria, the table and the figure."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import search_spaces
from nas.cli import main
from tests.nas.jobs.conftest import _strict_json

pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "full.pt"
    torch.save(space.build().state_dict(), path)
    return path


@pytest.mark.e2e
def test_compare_writes_correlations_per_unit_and_pair(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    argv = ["criteria", "compare", "--weights", str(weights), "--out", str(out)]
    assert main([*argv, "--criteria", "l1,l2,chip", "--score-images", "32", "--threads", "1"]) == 0
    assert "most alike" in capsys.readouterr().out
    with open(out / "criteria_similarity.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    units = [u.name for u in search_spaces.create("resnet20").units]
    assert len(rows) == 9 * (len(units) + 1)  # 3 x 3 pairs, each unit and the mean
    for r in rows:
        if r["criterion_a"] == r["criterion_b"]:  # a criterion ranks exactly like itself
            assert float(r["spearman"]) == pytest.approx(1.0)
            assert float(r["kendall"]) == pytest.approx(1.0)
            assert float(r["keep_overlap"]) == pytest.approx(1.0)
    l1_l2 = next(
        r for r in rows if (r["criterion_a"], r["criterion_b"], r["unit"]) == ("l1", "l2", "mean")
    )
    assert float(l1_l2["spearman"]) > 0.5  # L1 and L2 norms of the same filters agree
    assert (out / "criteria_similarity.png").read_bytes().startswith(PNG_MAGIC)
    metrics = _strict_json(out / "metrics.json")
    assert metrics["criteria"] == ["l1", "l2", "chip"] and set(metrics["scoring_seconds"]) == {
        "l1",
        "l2",
        "chip",
    }
    scores = torch.load(out / "scores.pt", weights_only=True)
    assert set(scores) == {"l1", "l2", "chip"} and set(scores["l1"]) == set(units)


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ("l1,l7", "unknown criterion 'l7'"),
        ("l1,uniform", "same score: nothing to compare"),
        ("l1", "at least two different criteria"),
        ("l1,l1", "at least two different criteria"),
    ],
)
def test_bad_criteria_lists_are_refused(
    weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], criteria: str, message: str
) -> None:
    out = tmp_path / "cmp"
    argv = ["criteria", "compare", "--weights", str(weights), "--out", str(out)]
    assert main([*argv, "--criteria", criteria]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
