"""nas.cli.reference: docs/cli.md is what the option declarations generate."""

from __future__ import annotations

from pathlib import Path

from nas.cli.commands import COMMANDS
from nas.cli.reference import cli_reference

ROOT = Path(__file__).resolve().parents[3]


def test_the_committed_cli_reference_is_what_the_declarations_generate() -> None:
    generated = cli_reference()
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == generated, (
        "docs/cli.md differs from the option declarations: regenerate it with "
        "python -m nas.cli.reference > docs/cli.md"
    )


def test_the_reference_documents_every_command_and_every_flag() -> None:
    text = cli_reference()
    for name in COMMANDS:
        assert f"## nas {name}\n" in text
    for flag in ("--target-macs", "--arch-signal", "--kd-features", "--clusters", "--select"):
        assert f"`{flag}`" in text
