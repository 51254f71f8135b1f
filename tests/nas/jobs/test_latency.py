"""nas.jobs.latency: nas latency-table builds, resumes and refuses; nas profile reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import search_spaces
from nas.cost import LatencyCost, LatencyTable
from nas.cost.timing import CALIBRATION_RANDOM, CALIBRATION_RATIOS, auto_block
from tests.nas.conftest import run

TABLE_ARGS = ("--space", "resnet20", "--input-size", "3x8x8", "--batch", "2", "--rounds", "3")

# every test here runs nas latency-table (it times layers on this machine) or a latency search
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nas.cli import main

    path = tmp_path_factory.mktemp("lt") / "table.json"
    assert (
        main(["latency-table", *TABLE_ARGS, "--threads", "1", "--out", str(path), "--quiet"]) == 0
    )
    return path


def test_the_table_covers_every_layer_and_records_where_it_was_measured(table_path: Path) -> None:
    table = LatencyTable.load(table_path)
    space = search_spaces.create("resnet20", in_channels=3, input_size=(8, 8))
    assert table.complete and table.env["threads"] == 1 and table.env["batch"] == 2
    assert table.env["device"] == "cpu" and table.env["torch"]
    timed = {la.name for la in space.layers if la.kind in ("conv", "linear")}
    assert set(table.layers) == timed
    assert all(v > 0 for e in table.entries.values() for row in e.ms for v in row)
    assert len(table.calibration) == len(CALIBRATION_RATIOS) + CALIBRATION_RANDOM
    assert table.scale > 0
    # every grid wider than one kernel block brackets the block's step
    assert table.block == auto_block("cpu")
    wide = [
        g
        for e in table.entries.values()
        for g in (e.grid_in, e.grid_out)
        if len(g) > 1 and g[-1] > 32
    ]
    assert wide and all(table.block + 1 in g for g in wide) and table.fixed_ms >= 0
    cost = LatencyCost(space, table=table)
    assert cost.full() > cost.exact({u.name: 1 for u in space.units}) > 0


def test_an_existing_table_is_kept_and_a_partial_one_resumed(
    table_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(table_path.read_bytes())
    code, _, err = run(capsys, "latency-table", *TABLE_ARGS, "--threads", "1", "--out", str(path))
    assert code == 2 and "pass --resume" in err and path.read_bytes() == table_path.read_bytes()
    data = json.loads(path.read_text())
    kept = sorted(data["entries"])[:4]
    data["entries"] = {k: data["entries"][k] for k in kept}
    data["complete"] = False
    path.write_text(json.dumps(data))
    code, _, _ = run(
        capsys, "latency-table", *TABLE_ARGS, "--threads", "1", "--out", str(path), "--resume"
    )
    resumed = json.loads(path.read_text())
    assert (
        code == 0
        and resumed["complete"]
        and set(resumed["entries"]) == set(json.loads(table_path.read_text())["entries"])
    )
    assert all(resumed["entries"][k] == data["entries"][k] for k in kept)  # not re-measured
    code, _, err = run(  # another batch cannot continue it
        capsys,
        "latency-table",
        *TABLE_ARGS[:4],
        "--batch",
        "3",
        "--threads",
        "1",
        "--out",
        str(path),
        "--resume",
    )
    assert code == 2 and "other settings" in err


def test_profile_predicts_and_measures_with_a_table(
    table_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = search_spaces.create("resnet20", in_channels=3, input_size=(8, 8))
    space.spec(space.uniform_widths_for_macs(0.5)).save(tmp_path / "arch.json")
    arch = str(tmp_path / "arch.json")
    code, out, _ = run(
        capsys, "profile", "--arch", arch, "--table", str(table_path), "--threads", "1", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["latency_ms"] > 0 and report["latency_batch"] == 2
    cost = LatencyCost(space, table=LatencyTable.load(table_path))
    assert report["predicted_latency_ms"] == pytest.approx(
        cost.exact(space.uniform_widths_for_macs(0.5))
    )
    code, _, err = run(
        capsys, "profile", "--arch", arch, "--table", str(table_path), "--threads", "2"
    )
    assert code == 2 and "measured with threads 1" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("select", ["argmax", "predictor"])
def test_a_latency_search_reports_its_latency_and_plots_against_it(
    select: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """nas search --cost latency on digits with a (synthetic) table for this process, its
    widths chosen by either selection: the predicted latency lands in the band, metrics.json
    reports predicted and measured latency of the network and its uniform twin, and nas plot
    pareto --cost latency draws it. The predictor ranks a pool in the latency band."""
    from dataclasses import replace

    from tests.conftest import synthetic_latency_table

    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    table = synthetic_latency_table(space)
    table = replace(table, env={**table.env, "threads": 1})
    table.save(tmp_path / "table.json")
    out = tmp_path / "run"
    argv = ["search", "--cost", "latency", "--latency-table", str(tmp_path / "table.json")]
    argv += ["--target-latency", "0.5", "--threads", "1", "--compare", "--quiet"]
    argv += ["--baseline-epochs", "1", "--warmup-epochs", "1", "--search-epochs", "2"]
    argv += ["--finetune-epochs", "1", "--arch-lr", "0.3", "--out", str(out), "--select", select]
    if select == "predictor":
        argv += ["--rank-samples", "12", "--rank-pool", "200", "--rank-top-k", "2"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    cost = LatencyCost(space, table=table)
    assert m["cost"] == "latency" and m["target_macs"] is None
    assert m["predicted_latency_ms"] == pytest.approx(cost.exact(m_widths(out)))
    assert abs(m["predicted_latency_ms"] / m["target_latency_ms"] - 1) <= 0.02
    assert m["target_latency_ms"] == pytest.approx(0.5 * cost.full())
    assert m["latency_ms"] > 0 and m["latency_ratio"] == pytest.approx(
        m["latency_ms"] / m["full_latency_ms"]
    )
    assert abs(m["uniform_predicted_latency_ms"] / m["target_latency_ms"] - 1) <= 0.02
    if select == "predictor":
        selection = json.loads((out / "selection.json").read_text())
        low, high = selection["pool_latency_ms"]
        assert low == pytest.approx(0.98 * m["target_latency_ms"])
        assert high == pytest.approx(m["target_latency_ms"])
        assert low <= m["predicted_latency_ms"] <= high  # under the budget, in the band
        for c in selection["candidates"]:
            assert c["predicted_latency_ms"] == pytest.approx(cost.exact(c["widths"]))
            assert low <= c["predicted_latency_ms"] <= high
        assert m_widths(out) in [c["widths"] for c in selection["candidates"]]
    code, _, err = run(
        capsys, "plot", "pareto", str(out), "--cost", "latency", "--out", str(tmp_path / "p.png")
    )
    assert code == 0 and (tmp_path / "p.png").is_file()


def m_widths(out: Path) -> dict[str, int]:
    return dict(json.loads((out / "arch.json").read_text())["widths"])


def test_an_onnx_runtime_table_is_built_and_refused_on_eager_torch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """nas latency-table --backend onnxruntime times the layers and the calibration networks in
    ONNX Runtime and records it; a run on eager torch refuses the table in one line."""
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    path = tmp_path / "ort.json"
    argv = ["latency-table", *TABLE_ARGS, "--threads", "1", "--step", "16", "--block", "0"]
    code, printed, err = run(capsys, *argv, "--backend", "onnxruntime", "--out", str(path))
    assert code == 0, err
    assert "onnxruntime" in printed
    table = LatencyTable.load(path)
    assert table.complete and table.env["backend"] == "onnxruntime" and table.env["runtime"]
    assert all(v > 0 for e in table.entries.values() for row in e.ms for v in row)
    assert all(c["measured_ms"] > 0 for c in table.calibration)
    from nas.cost.latency import check_environment, environment
    from nas.errors import ConfigError

    here = environment("cpu", 1, 2, "torch")
    with pytest.raises(ConfigError, match="measured with backend 'onnxruntime'"):
        check_environment(table, here, str(path))
    check_environment(table, environment("cpu", 1, 2, "onnxruntime"), str(path))
    # nas profile measures on the table's runtime and predicts with it
    spec = tmp_path / "arch.json"
    space = search_spaces.create("resnet20", in_channels=3, input_size=(8, 8))
    space.spec(space.uniform_widths(0.5)).save(spec)
    code, printed, err = run(
        capsys, "profile", "--arch", str(spec), "--table", str(path), "--threads", "1"
    )
    assert code == 0, err
    assert "predicted" in printed
