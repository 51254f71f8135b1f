"""The width search: a Gumbel-softmax supernet under a MAC budget.

Modules: ``config`` (:class:`SearchConfig`), ``loop`` (:func:`search_widths`, :func:`warm_up`,
the bi-level loop), ``checkpoint`` (resumable state, shared warm-ups), ``records`` (per-epoch
records, ``summary.csv``, :class:`SearchOutcome`) and ``finetune`` (extraction and fine-tuning
of the found network). The whole ``nas search`` job, with the choice between the projected
argmax and predictor-based selection, is :mod:`nas.jobs.search`.
"""

from nas.width_search.checkpoint import SEARCH_CHECKPOINT, SEARCH_FORMAT, WARMUP_INDEPENDENT
from nas.width_search.config import DEFAULT_WIDTH_RATIOS, MIN_TOLERANCE, SearchConfig
from nas.width_search.finetune import (
    check_compare,
    extract_searched,
    finetune,
    starting_network,
    summarize,
    uniform_twin,
)
from nas.width_search.loop import build_supernet, search_widths, start_run, warm_up
from nas.width_search.records import SEARCH_SUMMARY, SearchOutcome, SearchRecord
from nas.width_search.run import SearchRun, projection_shift

__all__ = [
    "DEFAULT_WIDTH_RATIOS",
    "MIN_TOLERANCE",
    "SEARCH_CHECKPOINT",
    "SEARCH_FORMAT",
    "SEARCH_SUMMARY",
    "WARMUP_INDEPENDENT",
    "SearchConfig",
    "SearchOutcome",
    "SearchRecord",
    "SearchRun",
    "build_supernet",
    "check_compare",
    "extract_searched",
    "finetune",
    "projection_shift",
    "search_widths",
    "start_run",
    "starting_network",
    "summarize",
    "uniform_twin",
    "warm_up",
]
