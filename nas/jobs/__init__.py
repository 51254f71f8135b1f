"""The command jobs: one module per command, turning its parsed options into a call of the
library and printing the result.

``base`` holds the :class:`~nas.jobs.base.Command` descriptor the command line reads, ``format``
how numbers are printed. Jobs: ``spaces``, ``profile``, ``train``, ``extract``, ``search`` (a
call of :func:`nas.width_search.run_search`), ``prune`` (:func:`nas.pruning.run_prune`),
``criteria``, ``latency``, ``rank``, ``transfer``. ``nas sweep``'s and ``nas plot``'s jobs are
:mod:`nas.sweep.run` and :mod:`nas.sweep.plot` (a sweep runs searches, so it sits above this
package). What every run shares (its options, ``args.yaml``, the baseline) is :mod:`nas.runs`.
A new command is a module here with a ``COMMAND`` and a line in ``nas.cli.commands``.
"""
