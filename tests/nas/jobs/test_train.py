"""nas.jobs.train: nas train (with nas extract of the trained network) and late failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import search_spaces
from nas.extraction import load_model
from tests.nas.conftest import run


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_train_then_extract_on_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full_dir = tmp_path / "full"
    code, _, _ = run(
        capsys,
        "train",
        "--space",
        "resnet20_b",
        "--dataset",
        "digits",
        "--epochs",
        "3",
        "--out",
        str(full_dir),
        "--quiet",
    )
    assert code == 0
    files = {p.name for p in full_dir.iterdir()}
    assert {
        "arch.json",
        "model.pt",
        "model.ts",
        "summary.csv",
        "args.yaml",
        "metrics.json",
    } <= files
    metrics = json.loads((full_dir / "metrics.json").read_text())
    assert metrics["test_acc"] > 50.0  # 10 classes: chance is 10 %
    assert len((full_dir / "summary.csv").read_text().strip().splitlines()) == 1 + 3

    space = search_spaces.create("resnet20_b", num_classes=10, in_channels=1, input_size=(8, 8))
    spec = space.spec(space.uniform_widths_for_macs(0.5))
    spec.save(tmp_path / "half.json")
    code, out, _ = run(
        capsys,
        "extract",
        "--weights",
        str(full_dir / "model.pt"),
        "--arch",
        str(tmp_path / "half.json"),
        "--out",
        str(tmp_path / "half"),
    )
    assert code == 0 and "of full" in out
    small = load_model(tmp_path / "half")
    assert sum(p.numel() for p in small.parameters()) == spec.params()
    report = json.loads((tmp_path / "half" / "metrics.json").read_text())
    assert report["macs"] == spec.macs() and abs(report["macs_ratio"] - 0.5) < 0.02


@pytest.mark.e2e
def test_a_late_failure_leaves_nothing_half_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "diverged"
    code, _, err = run(
        capsys, "train", "--lr", "1e30", "--epochs", "1", "--out", str(out), "--quiet"
    )
    assert code == 2 and "diverged" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # args.yaml and summary.csv were written, then removed


def test_a_corrupt_image_deep_in_a_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    root = tmp_path / "imgs"
    for split in ("train", "val"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(5):  # 10 training images: above the minimum of 8
                Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(root / split / label / f"{i}.png")
    (root / "train" / "b" / "2.png").write_bytes(b"not a png")  # not the first image
    out = tmp_path / "run"
    code, _, err = run(
        capsys,
        "train",
        "--dataset",
        f"imagefolder:{root}",
        "--image-size",
        "8",
        "--epochs",
        "1",
        "--val-fraction",
        "0",
        "--out",
        str(out),
        "--quiet",
    )
    assert code == 2 and "cannot read image" in err and "2.png" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
