"""nas.jobs.compress: nas compress clusters a finished run's weights and saves them packed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import nas
import search_spaces
from nas.compression import load_clustered
from nas.sweep.points import read_run_point
from tests.nas.conftest import run


@pytest.mark.e2e
@pytest.mark.usefixtures("one_thread")
def test_compress_clusters_every_layer_and_saves_a_network_that_reloads_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = search_spaces.create("resnet20_b", num_classes=10, in_channels=1, input_size=(8, 8))
    torch.manual_seed(0)
    torch.save(space.build().state_dict(), tmp_path / "full.pt")
    space.spec(space.uniform_widths(0.5)).save(tmp_path / "arch.json")
    small = tmp_path / "small"
    argv = [
        "extract",
        "--weights",
        str(tmp_path / "full.pt"),
        "--arch",
        str(tmp_path / "arch.json"),
    ]
    assert run(capsys, *argv, "--out", str(small))[0] == 0
    out = tmp_path / "clustered"
    code, printed, err = run(
        capsys,
        *("compress", str(small), "--clusters", "4", "--epochs", "1", "--compare"),
        *("--out", str(out), "--quiet"),
    )
    assert code == 0, err
    assert "4 clusters per layer" in printed and "without clustering" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["index_bits"] == 2 and 2 <= m["bits_per_weight"] < 3
    assert m["file_bytes"] < m["model_bytes"] / 4 and m["compression"] > 4
    assert {"clustered_acc", "uncompressed_acc", "source_acc", "soft_val_acc"} <= set(m)
    assert yaml.safe_load((out / "args.yaml").read_text())["command"] == "compress"
    rebuilt = load_clustered(out)  # from centroids and packed indices alone
    saved = nas.load_model(out)  # the snapped network in the usual files
    for key, value in saved.state_dict().items():
        assert torch.equal(value, rebuilt.state_dict()[key]), key
    for name, module in rebuilt.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            assert torch.unique(module.weight).numel() <= 4, name
    # the Pareto plot's model-size axis reads the run: the clustered network and its reference
    points = read_run_point(out, "size")
    assert points.front == [(m["file_bytes"] / 1024, m["clustered_acc"])]
    assert points.uniform == [(m["model_bytes"] / 1024, m["uncompressed_acc"])]
    png = tmp_path / "size.png"
    assert run(capsys, "plot", "pareto", str(out), "--cost", "size", "--out", str(png))[0] == 0
    assert png.stat().st_size > 0
