"""Command-line parsers generated from the option declarations (:mod:`nas.options`).

Every option of a command's classes becomes a flag (``--tau-min``), with its help, default and
choices; a boolean becomes a switch (``--hard``, ``--no-augment``, ``--quiet``). Values from
flags and from ``--config FILE.yaml`` go through the same conversion and checks, so an invalid
value gives the same one-line error from either; flags win over the file.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from nas.cli.base import Parser
from nas.errors import ConfigError, first_line
from nas.jobs.base import Command
from nas.options import OptionField, Options, build, convert, from_mapping, iter_fields

__all__ = ["command_parser", "load_command", "option_help", "parse_configs"]


def load_command(module: str) -> Command:
    """The ``COMMAND`` of a job module (imported now)."""
    command: Command = importlib.import_module(module).COMMAND
    return command


def command_fields(command: Command) -> list[OptionField]:
    return [f for _, f in iter_fields(command.options) if f.name not in command.exclude]


def command_parser(prog: str, command: Command) -> Parser:
    """The parser of one command: its options (and ``--config`` where it takes one)."""
    parser = Parser(prog=prog, description=command.description)
    if command.config_file:
        parser.add_argument(
            "--config",
            metavar="FILE.yaml",
            default=argparse.SUPPRESS,
            help="option values from a YAML file (keys as the option names; a run's args.yaml "
            "works); flags win",
        )
    groups: dict[str, Any] = {}
    for cls, f in iter_fields(command.options):
        if f.name in command.exclude:
            continue
        group = groups.get(cls.group) or groups.setdefault(
            cls.group, parser.add_argument_group(cls.group)
        )
        default = command.defaults.get(f.name, f.default)
        text = option_help(f, default, required=f.name in command.required)
        if f.option.positional:
            group.add_argument(
                f.name,
                nargs=f.option.nargs,
                default=argparse.SUPPRESS,
                help=text,
                metavar=f.flag,
            )
        elif f.is_bool:
            action = "store_false" if default else "store_true"
            group.add_argument(
                f.flag, dest=f.name, action=action, default=argparse.SUPPRESS, help=text
            )
        else:
            group.add_argument(
                f.flag,
                dest=f.name,
                default=argparse.SUPPRESS,
                metavar=f.option.metavar or _metavar(f),
                help=text,
            )
    return parser


def _metavar(f: OptionField) -> str:
    return f.name.split("_")[-1].upper()


def option_help(f: OptionField, default: Any, *, required: bool) -> str:
    """An option's help line: its meaning, choices and default (as --help and docs/cli.md show)."""
    text = f.option.help
    choices = f.choices()
    if choices is not None and not f.is_bool:
        text += f" ({', '.join(choices)})"
    if required:
        return text
    if f.is_bool or default is None or default == "" or default == ():
        return text
    shown = (
        ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
        if isinstance(default, tuple)
        else (f"{default:g}" if isinstance(default, float) else str(default))
    )
    return f"{text} (default: {shown})"


def parse_configs(
    name: str, command: Command, namespace: argparse.Namespace, commands: dict[str, str]
) -> list[Options]:
    """One validated instance of each of the command's classes from the parsed flags, the
    ``--config`` file and the defaults (flags win over the file, the file over defaults).
    ``commands``: command name -> module, to recognise the options of the command that wrote
    a ``--config`` file."""
    given = dict(vars(namespace))
    values: dict[str, Any] = dict(command.defaults)
    config = given.pop("config", None)
    if config is not None:
        values.update(_read_config(name, command, Path(config), commands))
    fields = {f.name: f for f in command_fields(command)}
    for key, raw in given.items():
        values[key] = convert(fields[key], raw, text=True)
    missing = [fields[r].flag for r in sorted(command.required) if r not in values]
    if missing:
        raise ConfigError(f"{missing[0]} is required")
    return [build(cls, values) for cls in command.options]


def _read_config(
    name: str, command: Command, path: Path, commands: dict[str, str]
) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read --config {path}: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of option names to values")
    writer = data.get("command")
    foreign: set[str] = set(command.exclude)
    if isinstance(writer, str) and writer != name and writer in commands:
        foreign |= {f.name for f in command_fields(load_command(commands[writer]))}
    values = from_mapping(command.options, data, f"--config {path}", foreign=frozenset(foreign))
    return {k: v for k, v in values.items() if k not in command.exclude}
