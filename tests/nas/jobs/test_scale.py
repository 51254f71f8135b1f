"""nas.jobs.scale: nas scale grid-searches compound multipliers on validation and trains the
chosen network."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import nas
from nas.sweep.points import read_run_point
from tests.nas.conftest import run


@pytest.mark.e2e
@pytest.mark.usefixtures("one_thread")
def test_scale_chooses_on_validation_meets_the_budget_and_saves_a_network_that_reloads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scaled"
    code, printed, err = run(
        capsys,
        *("scale", "--space", "resnet20_b", "--target-macs", "0.3", "--epochs", "1"),
        *("--grid-epochs", "1", "--compare", "--out", str(out), "--quiet"),
    )
    assert code == 0, err
    assert "uniform width" in printed
    rows = list(csv.DictReader((out / "grid.csv").open()))
    assert len(rows) >= 2 and len({(r["space"], r["width_multiplier"]) for r in rows}) == len(rows)
    m = json.loads((out / "metrics.json").read_text())
    best = max(rows, key=lambda r: float(r["val_acc"]))  # chosen on validation, not on test
    assert (m["space"], m["alpha"], m["gamma"]) == (
        best["space"],
        float(best["alpha"]),
        float(best["gamma"]),
    )
    assert abs(m["macs_ratio"] / 0.3 - 1) <= 0.02 and abs(m["uniform_macs_ratio"] / 0.3 - 1) <= 0.02
    model = nas.load_model(out)
    spec = nas.WidthSpec.load(out / "arch.json")
    assert spec.get_space().name == m["space"] and spec.macs() == m["macs"]
    assert sum(p.numel() for p in model.parameters()) == m["params"]
    points = read_run_point(out)  # on nas plot pareto's MAC axis beside its uniform twin
    assert points.front == [(m["macs_ratio"], m["test_acc"])]
    assert points.uniform == [(m["uniform_macs_ratio"], m["uniform_acc"])]
