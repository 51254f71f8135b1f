"""The command jobs: one module per command, each an adapter that turns the command's parsed
options into one call of a library function and prints its result.

``base`` holds the :class:`~nas.jobs.base.Command` descriptor the command line reads, ``format``
how numbers are printed. Jobs and the library call each one makes: ``spaces`` (the registry of
:mod:`search_spaces`, read as it is), ``profile`` (:func:`nas.cost.profile_network`), ``latency``
(:func:`nas.cost.timing.measure_latency_table`), ``train`` (:func:`nas.runs.train_baseline`),
``extract`` (:func:`nas.runs.extract_to_dir`), ``criteria`` (:func:`nas.runs.compare_criteria`),
``search`` (:func:`nas.width_search.run_search`), ``prune`` (:func:`nas.pruning.run_prune`),
``rank`` (:func:`nas.width_search.run_rank`) and ``transfer``
(:func:`nas.transfer_learning.run_transfer`). ``nas sweep``'s and ``nas plot``'s jobs are
:mod:`nas.sweep.run` and :mod:`nas.sweep.plot` (a sweep runs searches, so it sits above this
package). A job keeps only the options that are purely the command line's; the library
functions print nothing. A new command is a module here with a ``COMMAND`` and a line in
``nas.cli.commands``.
"""
