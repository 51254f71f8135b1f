"""nas.jobs.explain: nas explain writes the importance table, the class maps and the deletion
figures of a finished run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.nas.conftest import run


@pytest.mark.e2e
@pytest.mark.usefixtures("one_thread")
def test_explain_writes_a_class_by_channel_table_and_a_map_per_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trained = tmp_path / "trained"
    assert run(capsys, "train", "--epochs", "2", "--out", str(trained), "--quiet")[0] == 0
    code, printed, err = run(capsys, "explain", str(trained), "--steps", "20", "--images", "64")
    assert code == 0, err
    out = trained / "explain"
    assert "channels matter per class" in printed and str(out) in printed
    rows = list(csv.reader((out / "importance.csv").open()))
    assert rows[0][0] == "class" and len(rows) == 1 + 10 and len(rows[0]) == 1 + 64
    assert all(0.0 <= float(v) <= 1.0 for row in rows[1:] for v in row[1:])
    assert sorted(p.name for p in (out / "maps").iterdir()) == sorted(
        f"class_{c}.png" for c in range(10)
    )
    m = json.loads((out / "metrics.json").read_text())
    assert m["layer"] == "layer3" and m["channels"] == 64 and m["removed_channels"] == 16
    assert {"test_acc", "without_top_acc", "without_random_acc"} <= set(m)
