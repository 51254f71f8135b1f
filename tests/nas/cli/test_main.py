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


# -- OpenMP's idle threads: spin alone, sleep beside other nas processes -----------------------
@pytest.mark.parametrize(
    ("argv", "is_nas"),
    [
        (["nas", "search"], True),
        (["/venv/bin/python", "/venv/bin/nas", "sweep", "--workers", "2"], True),
        (["python3", "-m", "nas", "search"], True),
        (["python", "-m", "nas.cli", "train"], True),
        (["python", "-m", "pytest", "-q"], False),
        (["python", "experiments/benchmarks/search_quality.py"], False),
        (["bash", "-c", "echo nas"], False),
        ([], False),
    ],
)
def test_a_nas_command_line_is_recognised(argv: list[str], is_nas: bool) -> None:
    from nas.cli.main import is_nas_command

    assert is_nas_command(argv) is is_nas


def test_other_nas_processes_are_counted_from_proc(tmp_path: Path) -> None:
    import os

    from nas.cli.main import other_nas_processes

    def process(pid: int, *argv: str) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    process(os.getpid(), "nas", "search")  # this process itself does not count
    process(101, "/venv/bin/python", "/venv/bin/nas", "prune")
    process(102, "python", "-m", "nas", "search")
    process(103, "python", "-m", "pytest")
    (tmp_path / "104").mkdir()  # a process that ended: no cmdline
    (tmp_path / "self").mkdir()
    assert other_nas_processes(tmp_path) == 2
    assert other_nas_processes(tmp_path / "missing") == 1  # cannot tell: assume company


@pytest.mark.parametrize(
    ("command", "world_size", "others", "policy"),
    [
        ("search", None, 0, "ACTIVE"),  # alone: spin
        ("search", None, 1, "PASSIVE"),  # beside another nas process
        ("sweep", None, 0, "PASSIVE"),  # its workers share the cores
        ("search", "2", 0, "PASSIVE"),  # torchrun's processes share them
        ("search", "1", 0, "ACTIVE"),
        ("search", "x", 0, "ACTIVE"),
    ],
)
def test_idle_threads_spin_only_for_a_process_alone(
    command: str, world_size: str | None, others: int, policy: str
) -> None:
    from nas.cli.main import wait_policy

    assert wait_policy(command, world_size, lambda: others) == policy


def test_the_policy_is_chosen_in_a_fresh_process_and_an_explicit_one_is_kept() -> None:
    import os

    code = (
        "import os, sys; from nas.cli.main import quiet_idle_threads; quiet_idle_threads('sweep');"
        "print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["PASSIVE", "False"], out.stderr  # set before torch loads
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["ACTIVE", "False"], out.stderr  # the user's choice stays
