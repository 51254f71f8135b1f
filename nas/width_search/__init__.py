"""The width search: a Gumbel-softmax supernet under a MAC budget.

Modules: ``config`` (:class:`SearchConfig`: the options, values only), ``setup`` (what a run
builds from them: its budget, resolved once by :func:`search_budget`, the cost model, the width
choices and the gate strategy), ``loop`` (:func:`search_widths`, :func:`warm_up`,
the bi-level loop), ``checkpoint`` (resumable state, shared warm-ups), ``records`` (per-epoch
records, ``summary.csv``, :class:`SearchOutcome`) and ``finetune`` (extraction and fine-tuning
of the found network), ``saved`` (a finished search run read back), ``pipeline`` (the whole
search as one call: :func:`run_search` into a run directory, :func:`search` in memory; the
``nas search`` command only parses options into it and prints) and ``rank`` (:func:`run_rank`:
the GCN predictor fitted on a finished search's supernet, what ``nas rank`` runs).
"""

from nas.width_search.checkpoint import SEARCH_CHECKPOINT, SEARCH_FORMAT, WARMUP_INDEPENDENT
from nas.width_search.config import (
    ARCH_SIGNALS,
    DEFAULT_WIDTH_RATIOS,
    MIN_TOLERANCE,
    SearchConfig,
)
from nas.width_search.finetune import (
    check_compare,
    extract_searched,
    finetune,
    starting_network,
    summarize,
    uniform_twin,
)
from nas.width_search.loop import build_supernet, search_widths, start_run, warm_up
from nas.width_search.pipeline import (
    SearchResult,
    check_select,
    deliver,
    run_search,
    search,
    select_network,
    uniform_reference,
)
from nas.width_search.rank import check_search_finished, run_rank
from nas.width_search.records import SEARCH_SUMMARY, SearchOutcome, SearchRecord
from nas.width_search.run import SearchRun, projection_shift
from nas.width_search.saved import load_search_run, load_supernet
from nas.width_search.setup import search_budget

__all__ = [
    "ARCH_SIGNALS",
    "DEFAULT_WIDTH_RATIOS",
    "MIN_TOLERANCE",
    "SEARCH_CHECKPOINT",
    "SEARCH_FORMAT",
    "SEARCH_SUMMARY",
    "WARMUP_INDEPENDENT",
    "SearchConfig",
    "SearchOutcome",
    "SearchRecord",
    "SearchResult",
    "SearchRun",
    "build_supernet",
    "check_compare",
    "check_search_finished",
    "check_select",
    "deliver",
    "extract_searched",
    "finetune",
    "load_search_run",
    "load_supernet",
    "projection_shift",
    "run_rank",
    "run_search",
    "search",
    "search_budget",
    "search_widths",
    "select_network",
    "start_run",
    "starting_network",
    "summarize",
    "uniform_reference",
    "uniform_twin",
    "warm_up",
]
