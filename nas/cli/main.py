"""``nas``: the entry point.

Every command validates its input before it writes anything. A problem with the input (unknown
name, impossible value, missing or corrupt file) ends with one ``error: ...`` line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from nas.cli.base import Parser, argv_command
from nas.cli.commands import COMMANDS

__all__ = [
    "is_nas_command",
    "main",
    "other_nas_processes",
    "quiet_idle_threads",
    "top_parser",
    "wait_policy",
]


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


def quiet_idle_threads(command: str = "") -> None:
    """How OpenMP threads wait for work, chosen when the process starts (before torch is first
    imported: the command line calls this first), unless the environment already chose
    (``OMP_WAIT_POLICY``):

    * alone on the machine, they spin (``ACTIVE``): on small inputs (the main job's 8x8 digits)
      waking sleeping threads for every operation costs more than the operation;
    * beside other ``nas`` processes (:func:`other_nas_processes`), in a sweep (whose workers
      share the cores) or under torchrun (``WORLD_SIZE`` > 1), they sleep (``PASSIVE``), so
      that processes sharing the cores do not slow each other down by spinning against each
      other (``experiments/benchmarks/concurrency.py``)."""
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:  # chosen, or too late
        return
    os.environ["OMP_WAIT_POLICY"] = wait_policy(
        command, os.environ.get("WORLD_SIZE"), other_nas_processes
    )


def wait_policy(command: str, world_size: str | None, others: Callable[[], int]) -> str:
    """``PASSIVE`` for a sweep, a torchrun process (``world_size`` > 1) or a process beside
    ``others()`` other nas processes; else ``ACTIVE`` (see :func:`quiet_idle_threads`)."""
    try:
        several = int(world_size or 1) > 1
    except ValueError:  # not a count: torchrun's own checks report it
        several = False
    shared = command == "sweep" or several or others() > 0
    return "PASSIVE" if shared else "ACTIVE"


def other_nas_processes(proc: Path = Path("/proc")) -> int:
    """Other processes of this machine running a ``nas`` command (the ``nas`` entry point or
    ``python -m nas``), read from ``/proc``; where it cannot be read, 1 (assume company)."""
    own = os.getpid()
    try:
        entries = [e for e in proc.iterdir() if e.name.isdigit() and int(e.name) != own]
    except OSError:
        return 1
    count = 0
    for entry in entries:
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if is_nas_command([a.decode(errors="replace") for a in args if a]):
            count += 1
    return count


def is_nas_command(args: Sequence[str]) -> bool:
    """Whether a command line (argv) runs ``nas``: its entry point (``nas search``, or
    ``python .../bin/nas search``) or ``python -m nas``."""
    head = list(args[:3])
    if any(Path(a).name == "nas" for a in head[:2]):
        return True
    return any(a == "-m" and b in ("nas", "nas.cli") for a, b in itertools.pairwise(head))


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
    quiet_idle_threads(name)
    from nas.cli.run import run_command  # the command's own modules load only now

    return run_command(name, args[index + 1 :])


if __name__ == "__main__":
    sys.exit(main())
