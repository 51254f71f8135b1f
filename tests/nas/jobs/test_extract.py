"""nas.jobs.extract: nas extract."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import search_spaces
from tests.nas.conftest import run


@pytest.mark.e2e
def test_overwrite_replaces_an_earlier_run_entirely(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    torch.save(space.build().state_dict(), tmp_path / "full.pt")
    space.spec(space.uniform_widths(0.5)).save(tmp_path / "arch.json")
    out = tmp_path / "small"
    argv = [
        "extract",
        "--weights",
        str(tmp_path / "full.pt"),
        "--arch",
        str(tmp_path / "arch.json"),
    ]
    assert run(capsys, *argv, "--out", str(out))[0] == 0
    (out / "stale.txt").write_text("from the earlier run")
    assert run(capsys, *argv, "--out", str(out))[0] == 2  # refused without --overwrite
    assert (out / "stale.txt").is_file()
    assert run(capsys, *argv, "--out", str(out), "--overwrite")[0] == 0
    assert not (out / "stale.txt").exists()  # nothing of the earlier run is mixed in
    assert {"arch.json", "model.pt", "model.pt2", "model.ts", "metrics.json", "args.yaml"} == {
        f.name for f in out.iterdir()
    }
