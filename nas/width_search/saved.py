"""A finished (or checkpointed) ``nas search`` run read back: its options and its supernet
(what ``nas rank`` and a sweep's uniform-width points start from)."""

from __future__ import annotations

from pathlib import Path

from nas.engine import read_checkpoint
from nas.errors import ConfigError, WeightsError
from nas.extraction import check_full_weights
from nas.gates import GateStrategy
from nas.io import load_weights
from nas.options import build
from nas.runs import RunOptions, read_args
from nas.supernet import Supernet
from nas.width_search.checkpoint import SEARCH_CHECKPOINT, SEARCH_FORMAT
from nas.width_search.config import SearchConfig
from nas.width_search.setup import create_strategy
from search_spaces import SearchSpace

__all__ = ["load_search_run", "load_supernet"]


def load_search_run(run: Path) -> tuple[RunOptions, SearchConfig]:
    """The options of a finished (or checkpointed) ``nas search`` run directory."""
    args_path, ckpt = run / "args.yaml", run / SEARCH_CHECKPOINT
    if not args_path.is_file() or not ckpt.is_file():
        raise ConfigError(
            f"{run} is not a search run directory (needs args.yaml and "
            f"{SEARCH_CHECKPOINT} written by nas search)"
        )
    stored = read_args(args_path)
    if stored.get("command") != "search":
        raise ConfigError(f"{args_path} was not written by nas search")
    try:
        return build(RunOptions, stored), build(SearchConfig, stored)
    except ConfigError as exc:
        raise ConfigError(f"{args_path}: {exc}") from None


def load_supernet(
    run: Path, space: SearchSpace, config: SearchConfig
) -> tuple[Supernet, GateStrategy]:
    state = read_checkpoint(run / SEARCH_CHECKPOINT, SEARCH_FORMAT, "search")
    try:
        check_full_weights(space, state["supernet"], source=f"{run / SEARCH_CHECKPOINT}")
    except WeightsError as exc:
        raise WeightsError(f"{exc} (the run's args.yaml and checkpoint disagree)") from None
    model = space.build()
    supernet = Supernet(model, space)
    load_weights(model, state["supernet"])
    strategy = create_strategy(config, space)
    strategy.load_state_dict(state["strategy"])
    strategy.attach(supernet)
    return supernet.to(config.device), strategy.to(config.device)
