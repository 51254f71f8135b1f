"""The command line: what it prints, what it writes, and how it refuses bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import search_spaces
from nas.cli import main
from nas.extraction import load_model


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_spaces_lists_every_space(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "spaces")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == search_spaces.list_spaces()


def test_profile_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "profile", "resnet56", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["space"] == "resnet56" and report["macs"] == 125_485_696
    assert report["flops"] == 2 * report["macs"]
    assert report["params"] == search_spaces.create("resnet56").params()
    assert len(report["units"]) == 27
    assert report["units"][0] == {
        "name": "layer1.0.conv1",
        "kind": "block",
        "width": 16,
        "max_width": 16,
    }


def test_profile_input_size_and_classes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "profile", "resnet50", "--input-size", "1x28x28", "--num-classes", "10", "--json"
    )
    report = json.loads(out)
    space = search_spaces.create("resnet50", num_classes=10, in_channels=1, input_size=(28, 28))
    assert code == 0 and report["macs"] == space.macs() and report["input_size"] == [28, 28]


def test_profile_of_a_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = search_spaces.create("resnet20_b")
    space.spec(space.uniform_widths(0.5)).save(tmp_path / "arch.json")
    code, out, _ = run(capsys, "profile", "--arch", str(tmp_path / "arch.json"))
    assert code == 0
    assert "layer3" in out and "32 /    64" in out
    assert f"{space.macs(space.uniform_widths(0.5)):,}" in out


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


def _subcommands() -> list[str]:
    from nas.cli.commands import COMMANDS

    return sorted(COMMANDS)


@pytest.mark.parametrize("command", _subcommands())
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and out.startswith("usage: nas " + command)


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
            for i in range(3):
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
    assert {"arch.json", "model.pt", "model.ts", "metrics.json", "args.yaml"} == {
        f.name for f in out.iterdir()
    }


def test_config_values_are_checked_like_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    for text, expected in (
        ("tau0: [1, 2]", "--tau0 must be a number"),
        ("lr: null", "--lr needs a value"),
        ("warmup_epochs: 2.5", "--warmup-epochs must be an integer"),
        ("hard: 3", "--hard must be true or false"),
        ("order: magic", "unknown --order 'magic'; choose one of"),
        ("rank_pool: 0", "--rank-pool must be >= 1"),
    ):
        config.write_text(text + "\n")
        code, _, err = run(capsys, "search", "--config", str(config), "--out", str(tmp_path / "o"))
        assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, (text, err)
        assert not (tmp_path / "o").exists()


def test_a_closed_pipe_is_not_an_error() -> None:
    proc = subprocess.run(
        f"{sys.executable} -m nas.cli spaces | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip().split()[0] == search_spaces.list_spaces()[0]
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
