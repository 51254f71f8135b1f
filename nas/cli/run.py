"""Running one command: its parser, its configs, its job; one error line for bad input."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace

from nas.cli.base import Parser, argv_command
from nas.cli.commands import COMMANDS
from nas.cli.parser import command_parser, load_command, parse_configs
from nas.engine.distributed import RankStopped, launched, start, stop
from nas.errors import ConfigError, NasError
from nas.jobs.base import Command
from nas.options import Options
from search_spaces.files import is_writer

__all__ = ["one_line", "run_command", "several_processes"]


def one_line(exc: NasError) -> str:
    """The message of a user error as one line. An error raised in a DataLoader worker comes
    back wrapped with the worker's traceback; its own message is the wrapper's last line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and "Original Traceback" in str(exc):
        return lines[-1].split(": ", 1)[-1]
    return " ".join(lines)


def run_command(name: str, rest: Sequence[str]) -> int:
    """``nas NAME REST...``: exit code 0 on success, 2 on bad input (one ``error:`` line)."""
    prog, rest = f"nas {name}", list(rest)
    resumable = False
    try:
        command = load_command(COMMANDS[name][0])
        if command.subcommands:
            kind = argv_command(rest)
            kinds = Parser(prog=prog, description=command.description)
            sub = kinds.add_subparsers(dest="kind", metavar="KIND", parser_class=Parser)
            for kind_name, (text, _) in command.subcommands.items():
                sub.add_parser(kind_name, help=text, add_help=False)
            if kind is None or kind[1] not in command.subcommands:
                kinds.parse_args(rest)  # --help, or a one-line usage error
                names = ", ".join(command.subcommands)
                print(f"error: name a kind: {names} (see {prog} --help)", file=sys.stderr)
                return 2
            prog, name = f"{prog} {kind[1]}", f"{name} {kind[1]}"
            command = command.subcommands[kind[1]][1]
            rest = rest[kind[0] + 1 :]
        resumable = command.resumable
        namespace = command_parser(prog, command).parse_args(rest)
        configs = parse_configs(name, command, namespace, {k: v[0] for k, v in COMMANDS.items()})
        assert command.run is not None
        with several_processes(prog, command, configs) as configs:
            return int(command.run(*configs))
    except SystemExit as exc:  # --help (0) or a usage error (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
    except NasError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (nas profile ... | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except RankStopped as exc:  # a run of several processes lost one: nothing is removed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (continue with --resume)" if resumable else ""
        print(f"{prog}: interrupted{hint}", file=sys.stderr)
        return 130


@contextlib.contextmanager
def several_processes(
    prog: str, command: Command, configs: list[Options]
) -> Iterator[list[Options]]:
    """Under torchrun (several ranks): the command must take it (``Command.distributed``);
    this process joins the group (on the configs' ``device``, with their ``sync_bn``) and
    leaves it at the end; ranks other than 0 print nothing and show no progress (they write
    nothing either: :mod:`nas.engine.distributed`). Otherwise the configs as they are."""
    if not launched():
        yield configs
        return
    if not command.distributed:
        raise ConfigError(
            f"{prog} does not run as several processes (torchrun started "
            f"{os.environ.get('WORLD_SIZE')}); run it as one process"
        )
    device = next((str(c.device) for c in configs if hasattr(c, "device")), "cpu")
    sync_bn = any(bool(getattr(c, "sync_bn", False)) for c in configs)
    if not is_writer():
        configs = [
            replace(c, progress=False) if hasattr(c, "progress") else c  # type: ignore[type-var]
            for c in configs
        ]
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    start(device, sync_bn=sync_bn)
    clean = False
    try:
        yield configs
        clean = True
    finally:
        stop(clean=clean)
