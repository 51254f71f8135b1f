"""What a search builds from its options, in one place.

:class:`~nas.width_search.SearchConfig` holds and validates values; this module turns them into
the objects a run works with:

* :func:`search_budget`: the cost model and the target in its unit, resolved **once per run**
  into a :class:`~nas.cost.ResolvedBudget` that every stage receives (the search's budget loss,
  the projection, the choosers, the ``--compare`` twin, the metrics);
* :func:`cost_model`: exact MACs, or a latency table checked against this machine;
* :func:`width_choices` and :func:`strategy_choices`: the widths a unit may take (the width
  ratios, and what the gate strategy makes of them, known without building it);
* :func:`create_strategy`: the gate strategy with its options (built once per run, by the
  search).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import ConfigError
from nas.width_search.config import SearchConfig

if TYPE_CHECKING:
    from nas.cost import CostModel, LatencyTable, ResolvedBudget
    from nas.gates import GateStrategy
    from search_spaces import SearchSpace

__all__ = [
    "cost_model",
    "create_strategy",
    "search_budget",
    "strategy_choices",
    "strategy_options",
    "width_choices",
]


def cost_model(config: SearchConfig, space: SearchSpace, threads: int | None = None) -> CostModel:
    """The budget's cost model for ``space``; a latency table is checked against this run's
    device and ``threads`` (default: torch's now) with one-line refusals."""
    from nas.cost import MacsCost

    if config.cost != "latency":
        return MacsCost(space)
    import torch

    from nas.cost.latency import LatencyCost, check_environment, environment

    assert config.latency_table is not None  # SearchConfig.check
    table = _load_table(config.latency_table)
    table.check_space(space)  # another network first: the more basic mismatch
    here = environment(
        config.device,
        threads or torch.get_num_threads(),
        table.env["batch"],
        table.env["backend"],  # a search runs on the runtime its table timed
    )
    check_environment(table, here, config.latency_table)
    return LatencyCost(space, table=table)


def search_budget(
    config: SearchConfig,
    space: SearchSpace,
    *,
    cost: CostModel | None = None,
    threads: int | None = None,
) -> ResolvedBudget:
    """The run's budget: ``--target-macs`` (or ``--target-latency`` with ``--cost latency``) in
    the unit of the cost model (default :func:`cost_model`), with the tolerance and the width
    choices of the strategy; a one-line :class:`ConfigError` for a target no network of the
    choices reaches."""
    from nas.cost import resolve_budget as resolve

    cost = cost or cost_model(config, space, threads)
    text = config.target_macs if cost.name == "macs" else config.target_latency
    if text is None:  # nas sweep sets it per trial
        raise ConfigError("--cost latency needs --target-latency")
    return resolve(cost, text, config.tolerance, strategy_choices(config, space))


def strategy_options(config: SearchConfig) -> dict[str, object]:
    """``--strategy-option`` as typed keyword options of the strategy (one-line errors)."""
    from nas.gates import strategy_options as typed

    return typed(config.strategy, config.strategy_option)


def width_choices(config: SearchConfig, space: SearchSpace) -> dict[str, list[int]]:
    """The widths of the width ratios (rounded to ``--width-multiple``, and to whole groups
    where a grouped convolution reads the unit), per unit of ``space``."""
    from nas.supernet import width_choices as choices

    return {
        u.name: choices(
            u.max_width, config.width_ratios, math.lcm(config.width_multiple, u.granularity)
        )
        for u in space.units
    }


def strategy_choices(config: SearchConfig, space: SearchSpace) -> dict[str, list[int]]:
    """Every unit's width choices: the width ratios (``width-gumbel``), or what the strategy
    makes of them (``channel-gumbel``: multiples of its group size), without building it."""
    from nas.gates import strategy_class

    kind = strategy_class(config.strategy)
    return kind.choices_for(space, width_choices(config, space), **strategy_options(config))


def create_strategy(config: SearchConfig, space: SearchSpace) -> GateStrategy:
    """The gate strategy of this search for ``space``, with its options."""
    from nas.gates import create_strategy as create

    return create(config.strategy, space, width_choices(config, space), **strategy_options(config))


def _load_table(path: str) -> LatencyTable:
    p = Path(path)
    stamp = p.stat().st_mtime_ns if p.is_file() else 0
    return _cached_table(str(p.resolve()), stamp)


@functools.lru_cache(maxsize=8)
def _cached_table(path: str, stamp: int) -> LatencyTable:
    from nas.cost import LatencyTable

    return LatencyTable.load(path)
