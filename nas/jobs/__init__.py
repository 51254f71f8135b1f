"""The command jobs: one module per command, what it reads, writes and prints.

``common`` holds what they share (run options of a search, ``args.yaml``, the baseline, loading
a search run), ``base`` the :class:`~nas.jobs.base.Command` descriptor the command line reads,
``format`` how numbers are printed. Jobs: ``spaces``, ``profile``, ``train``, ``extract``,
``search`` (with the Python twin :func:`~nas.jobs.search.search`), ``rank``, ``transfer``,
``plot``. ``nas sweep``'s job is :mod:`nas.sweep.run` (a sweep runs search jobs, so it sits above
this package). A new command is a module here with a ``COMMAND`` and a line in
``nas.cli.commands``.
"""
