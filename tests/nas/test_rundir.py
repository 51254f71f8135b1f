"""nas.rundir: what a run may write into, resume from or replace, and its lock."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nas.errors import ConfigError, NasError
from nas.rundir import LOCK_NAME, prepare_out_dir, run_output


def _nas_run(path: Path, command: str = "search") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "args.yaml").write_text(yaml.safe_dump({"command": command}))
    (path / "metrics.json").write_text("{}")
    return path


def test_a_second_writer_is_refused_and_the_lock_goes_with_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with run_output(out):
        assert (out / LOCK_NAME).is_file()
        (out / "args.yaml").write_text(yaml.safe_dump({"command": "train"}))
        with pytest.raises(ConfigError, match="another nas process is writing"):  # noqa: SIM117
            with run_output(out, resume=True, command="train"):
                pass
    assert sorted(p.name for p in out.iterdir()) == ["args.yaml"]  # no lock file left behind
    with run_output(out, resume=True, command="train"):  # free again
        pass


def test_a_stale_lock_file_of_a_killed_process_does_not_block(tmp_path: Path) -> None:
    out = _nas_run(tmp_path / "run", "train")
    (out / LOCK_NAME).write_text("12345\n")  # left by kill -9: the kernel released the lock
    with run_output(out, resume=True, command="train"):
        pass


@pytest.mark.parametrize(
    ("setup", "options", "message"),
    [
        (lambda p: p, {"resume": True}, "holds no run to resume"),
        (lambda p: p.mkdir() or p, {"resume": True}, "holds no run to resume"),
        (
            lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")) and p,
            {"resume": True},
            "files nas did not write",
        ),
        (lambda p: _nas_run(p, "train"), {"resume": True, "command": "search"}, "a nas train run"),
        (
            lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")) and p,
            {"overwrite": True},
            "holds files nas did not write",
        ),
        (lambda p: _nas_run(p), {}, "not empty"),
        (
            lambda p: _nas_run(p),
            {"overwrite": True, "inputs": ["RUN/teacher.pt"]},
            "would delete .*teacher.pt",
        ),
    ],
)
def test_refusals_change_nothing(
    tmp_path: Path, setup: object, options: dict[str, object], message: str
) -> None:
    out = tmp_path / "run"
    setup(out)  # type: ignore[operator]
    before = {p.name: p.read_bytes() for p in out.iterdir()} if out.is_dir() else None
    inputs = [str(i).replace("RUN", str(out)) for i in options.pop("inputs", [])]  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=message):
        prepare_out_dir(out, inputs=inputs, **options)  # type: ignore[arg-type]
    after = {p.name: p.read_bytes() for p in out.iterdir()} if out.is_dir() else None
    assert after == before


def test_a_new_run_that_fails_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(NasError), run_output(out):
        (out / "args.yaml").write_text("command: train\n")
        raise NasError("training diverged")
    assert not out.exists()


def test_overwrite_empties_an_earlier_run_first(tmp_path: Path) -> None:
    out = _nas_run(tmp_path / "run")
    (out / "stale.txt").write_text("old")
    with run_output(out, overwrite=True):
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]
