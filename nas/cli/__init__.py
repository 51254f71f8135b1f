"""The ``nas`` command line: parsers generated from the option declarations, one job per command.

Modules: ``commands`` (the command table: name -> job module, one-line help), ``parser`` (argparse
and ``--config`` from :mod:`nas.options`) and ``main`` (the entry point: one ``error:`` line and
exit code 2 for bad input).
"""

from nas.cli.main import main

__all__ = ["main"]
