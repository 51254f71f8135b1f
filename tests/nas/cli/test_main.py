"""nas.cli.main: one error line and exit code 2 for bad input, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import search_spaces
from nas.cli import main


def _bad_cases(tmp: Path) -> list[list[str]]:
    (tmp / "corrupt.pt").write_bytes(b"not a checkpoint")
    (tmp / "full").mkdir()
    space = search_spaces.create("resnet20")
    torch.save(search_spaces.create("resnet32").build().state_dict(), tmp / "r32.pt")
    space.spec(space.uniform_widths(0.5)).save(tmp / "arch.json")
    (tmp / "used").mkdir()
    (tmp / "used" / "keep.txt").write_text("user data")
    out = str(tmp / "new")
    return [
        ["profile", "resnet57"],
        ["profile", "resnet20", "--input-size", "3x32x"],
        ["profile", "--arch", str(tmp / "missing.json")],
        ["profile", "resnet56", "--arch", str(tmp / "arch.json")],
        ["train", "--space", "resnet57", "--out", out],
        ["train", "--dataset", "cifar11", "--out", out],
        ["train", "--dataset", f"npz:{tmp / 'missing.npz'}", "--out", out],
        ["train", "--epochs", "0", "--out", out],
        ["train", "--lr", "-1", "--out", out],
        ["train", "--out", str(tmp / "used")],
        [
            "extract",
            "--weights",
            str(tmp / "corrupt.pt"),
            "--arch",
            str(tmp / "arch.json"),
            "--out",
            out,
        ],
        [
            "extract",
            "--weights",
            str(tmp / "r32.pt"),
            "--arch",
            str(tmp / "arch.json"),
            "--out",
            out,
        ],
        [
            "extract",
            "--weights",
            str(tmp / "r32.pt"),
            "--arch",
            str(tmp / "arch.json"),
            "--out",
            out,
            "--order",
            "magic",
        ],
        ["frobnicate"],
        ["train", "--batch-size", "1", "--out", out],  # BatchNorm cannot train on one sample
        ["train", "--image-size", "100000", "--out", out],
        ["train", "--out", str(tmp / "corrupt.pt" / "sub")],  # parent is a file
        ["train", "--out", str(tmp / "used"), "--overwrite"],  # not a nas run: never replaced
    ]


def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in _bad_cases(tmp_path):
        code = main(argv)
        _, err = capsys.readouterr()
        assert code == 2, argv
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert "Traceback" not in err and "error" in err, (argv, err)
        assert not (tmp_path / "new").exists(), argv  # nothing half-written
    assert (tmp_path / "used" / "keep.txt").read_text() == "user data"


@pytest.mark.slow  # a fresh interpreter loads nas and torch
def test_console_entry_point_never_prints_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "arch.json"
    bad.write_text('{"space": "resnet20", "widths": {}}')
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "profile", "--arch", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "missing field" in proc.stderr
