"""``nas``: the entry point.

Every command validates its input before it writes anything. A problem with the input (unknown
name, impossible value, missing or corrupt file) ends with one ``error: ...`` line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from nas.cli.base import Parser, argv_command
from nas.cli.commands import COMMANDS

__all__ = ["main", "quiet_idle_threads", "top_parser"]


def top_parser() -> Parser:
    """``nas``'s own parser: the list of commands (no command module is imported)."""
    parser = Parser(
        prog="nas",
        description="Channel-width neural architecture search for ResNets: search, count MACs "
        "exactly, extract smaller networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


def quiet_idle_threads() -> None:
    """OpenMP threads waiting for work sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``,
    unless the environment already chose), so that processes sharing the cores do not slow
    each other down by spinning against each other (``experiments/benchmarks/concurrency.py``).
    Effective only before torch is first imported: the command line calls it first."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    found = argv_command(args)
    if found is None or found[1] not in COMMANDS:
        try:
            top_parser().parse_args(args)  # --help, or a one-line usage error
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else 2
        top_parser().print_help()
        print("error: name a command (see nas --help)", file=sys.stderr)
        return 2
    index, name = found
    quiet_idle_threads()
    from nas.cli.run import run_command  # the command's own modules load only now

    return run_command(name, args[index + 1 :])


if __name__ == "__main__":
    sys.exit(main())
