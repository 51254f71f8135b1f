"""What every run shares, and the runs that need no search method.

Modules: ``base`` (what every run shares: :class:`RunOptions`, ``args.yaml`` written, checked and
read, the threads and environment a run records, :func:`train_full`: the full network trained or
loaded as its baseline), ``baseline`` (:func:`train_baseline`, what ``nas train`` runs),
``extract`` (:func:`extract_to_dir`, ``nas extract``) and ``criteria``
(:func:`compare_criteria`, ``nas criteria compare``). The methods' runs live in their packages
(:func:`nas.width_search.run_search`, :func:`nas.width_search.run_rank`,
:func:`nas.pruning.run_prune`, :func:`nas.transfer_learning.run_transfer`); the commands in
:mod:`nas.jobs` only parse options into them and print.
"""

from nas.runs.base import (
    RunOptions,
    check_data_fits,
    check_search_out,
    environment,
    initial_weights,
    read_args,
    resolve_threads,
    resolved_args,
    search_data,
    static_run_dir,
    torch_threads,
    train_full,
    write_or_check_args,
)
from nas.runs.baseline import train_baseline
from nas.runs.criteria import CompareOptions, compare_criteria
from nas.runs.extract import extract_to_dir

__all__ = [
    "CompareOptions",
    "RunOptions",
    "check_data_fits",
    "check_search_out",
    "compare_criteria",
    "environment",
    "extract_to_dir",
    "initial_weights",
    "read_args",
    "resolve_threads",
    "resolved_args",
    "search_data",
    "static_run_dir",
    "torch_threads",
    "train_baseline",
    "train_full",
    "write_or_check_args",
]
