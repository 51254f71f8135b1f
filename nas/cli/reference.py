"""The command-line reference (``docs/cli.md``), generated from the option declarations.

Every command of :data:`nas.cli.commands.COMMANDS` (and every kind of one with kinds, ``nas plot
pareto``) with its description and, per option group, each option's flag, meaning (with its
choices), default and whether it is required: the same declarations the parsers, ``--config``
files and ``args.yaml`` are built from (:mod:`nas.options`), so the page cannot drift from the
commands. ``python -m nas.cli.reference > docs/cli.md`` writes it; a test fails when the
committed page differs from what the declarations generate.
"""

from __future__ import annotations

from nas.cli.commands import COMMANDS
from nas.cli.parser import load_command, option_help
from nas.jobs.base import Command
from nas.options import iter_fields

__all__ = ["cli_reference"]

HEADER = """# Command-line reference

Generated from the option declarations (`python -m nas.cli.reference > docs/cli.md`); do not
edit by hand. Every command also answers `nas COMMAND --help`. Bad input ends with one
`error:` line and exit code 2.
"""


def cli_reference() -> str:
    """The reference page of every command, in the order ``nas --help`` lists them."""
    parts = [HEADER]
    for name, (module, text) in COMMANDS.items():
        command = load_command(module)
        parts.append(f"## nas {name}\n\n{_sentence(text)}\n")
        if command.subcommands:
            for kind, (kind_text, sub) in command.subcommands.items():
                parts.append(f"### nas {name} {kind}\n\n{_sentence(kind_text)}\n")
                parts.append(_options(sub))
        else:
            parts.append(_options(command))
    return "\n".join(parts).rstrip() + "\n"


def _sentence(text: str) -> str:
    text = text.strip()
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _options(command: Command) -> str:
    out = [command.description.strip(), ""] if command.description else []
    if command.config_file:
        out += [
            "Takes `--config FILE.yaml`: option values from a YAML file (keys as the option "
            "names; a run's `args.yaml` works); flags win.",
            "",
        ]
    groups: dict[str, list[str]] = {}
    for cls, f in iter_fields(command.options):
        if f.name in command.exclude:
            continue
        default = command.defaults.get(f.name, f.default)
        required = f.name in command.required
        text = option_help(f, default, required=required).replace("|", "\\|")
        flag = f"`{f.flag}`" + (" (required)" if required and not f.option.positional else "")
        groups.setdefault(cls.group, []).append(f"| {flag} | {text} |")
    for group, rows in groups.items():
        out += [f"**{group}**", "", "| option | meaning |", "| --- | --- |", *rows, ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(cli_reference(), end="")
