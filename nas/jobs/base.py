"""What a command is to the command line: its option classes and the function that runs it.

Every job module (``nas.jobs.train``, ``nas.jobs.search``, ...; ``nas.sweep.run`` for ``nas
sweep``, ``nas.sweep.plot`` for ``nas plot``) exposes ``COMMAND``, a :class:`Command`. ``nas.cli``
builds the command's parser from the option classes (:mod:`nas.options`), reads ``--config``
files, validates, and calls ``COMMAND.run`` with one instance of each class, in order. ``run``
passes them to one library function (``nas.runs.train_baseline``,
``nas.width_search.run_search``, ...), prints what the command prints and returns the exit
code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.options import Options

__all__ = ["Command"]


@dataclass(frozen=True)
class Command:
    """A command: ``options`` (classes), ``run(*configs) -> exit code``.

    ``exclude``: fields of those classes this command does not take (they keep their
    defaults); ``required``: fields that must be given (by a flag or ``--config``);
    ``defaults``: this command's own defaults for some fields; ``config_file``: it
    accepts ``--config FILE.yaml``; ``resumable``: an interrupted run continues with
    ``--resume``; ``subcommands``: kinds (``nas plot pareto``) instead of options;
    ``distributed``: it runs as several processes under torchrun
    (:mod:`nas.engine.distributed`), else torchrun is refused with one line.
    """

    options: tuple[type[Options], ...] = ()
    run: Callable[..., int] | None = None
    description: str = ""
    exclude: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    config_file: bool = False
    resumable: bool = False
    subcommands: Mapping[str, tuple[str, Command]] = field(default_factory=dict)
    distributed: bool = False
