"""nas.cli.parser: --help of every command and --config values checked like flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.nas.conftest import run


def _subcommands() -> list[str]:
    from nas.cli.commands import COMMANDS

    return sorted(COMMANDS)


@pytest.mark.parametrize("command", _subcommands())
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and out.startswith("usage: nas " + command)


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
