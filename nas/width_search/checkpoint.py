"""Search checkpoints: everything needed to continue a search bit for bit, and shared warm-ups.

``search_checkpoint.pt`` is written after every epoch (:func:`run_state`); ``--resume`` continues
from it (:func:`load_checkpoint`) to the result an uninterrupted run reaches. A warm-up
checkpoint (:func:`nas.width_search.warm_up`) can start any search whose options differ only in
:data:`WARMUP_INDEPENDENT` options (:func:`warm_start`).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.engine import loader_state, read_checkpoint, restore_loader, restore_rng, rng_state
from nas.errors import ConfigError
from nas.io import load_weights
from nas.options import AFTER_SEARCH, AFTER_WARMUP, record, tagged
from nas.width_search.config import SearchConfig
from nas.width_search.records import SearchRecord

if TYPE_CHECKING:
    from nas.width_search.run import SearchRun

__all__ = [
    "SEARCH_CHECKPOINT",
    "SEARCH_FORMAT",
    "WARMUP_INDEPENDENT",
    "config_dict",
    "load_checkpoint",
    "run_state",
    "warm_start",
]

SEARCH_CHECKPOINT = "search_checkpoint.pt"
SEARCH_FORMAT = "channel-nas/search-checkpoint-2"

# Options a search does not depend on (fine-tuning, the choice of widths, the device), and those
# its warm-up epochs do not depend on either: the warm-up trains the weights alone at widths
# drawn uniformly from the initial logits (exactly one-hot masks, whatever the temperature; no
# architecture step, no budget), so searches that differ only in these can share one warm-up
# (:func:`warm_up`). Both read from the options' declarations (their tags).
_NOT_SEARCH = tagged(SearchConfig, AFTER_SEARCH)
WARMUP_INDEPENDENT = tagged(SearchConfig, AFTER_WARMUP) | _NOT_SEARCH


def config_dict(config: SearchConfig) -> dict[str, Any]:
    """The options that shape the search (not the fine-tuning, not the device)."""
    return search_part(record(config))


def search_part(options: dict[str, Any]) -> dict[str, Any]:
    """Recorded options without those that do not shape the search (a checkpoint's record is
    read through it too: one written when an option counted as shaping the search still
    matches once it no longer does)."""
    return {k: v for k, v in options.items() if k not in _NOT_SEARCH}


def stored_options(options: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's recorded options, an option it predates at its default (what such a
    search ran with: ``--arch-signal labels`` before the option existed)."""
    return search_part({**record(SearchConfig()), **options})


def warmup_dict(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in WARMUP_INDEPENDENT}


def run_state(run: SearchRun) -> dict[str, Any]:
    """The checkpoint of ``run`` (only types ``torch.load(weights_only=True)`` reads)."""
    return {
        "format": SEARCH_FORMAT,
        "config": config_dict(run.config),
        "supernet": run.supernet.model.state_dict(),
        "strategy": run.strategy.state_dict(),
        "w_opt": run.w_opt.state_dict(),
        "w_sched": run.w_sched.state_dict(),
        "a_opt": run.a_opt.state_dict() if run.a_opt is not None else {},
        "records": [asdict(r) for r in run.records],
        "seconds": run.seconds,
        "budget": run.budget.state_dict(),
        "rng": rng_state(run.device),
        "weight_loader": loader_state(run.weight_loader),
        "arch_loader": loader_state(run.arch_loader),
        "val_loader": loader_state(run.val_loader),
    }


def load_checkpoint(run: SearchRun, path: Path) -> None:
    """Continue ``run`` from its checkpoint; a checkpoint of other options is refused."""
    state = read_checkpoint(path, SEARCH_FORMAT, "search")
    if stored_options(state["config"]) != config_dict(run.config):
        raise ConfigError(
            f"cannot resume from {path}: it was written with other search "
            "options (use a new output directory)"
        )
    _restore(run, state, arch_optimizer=True)


def warm_start(run: SearchRun, path: Path, *, unfinished: bool = False) -> None:
    """Continue from a shared warm-up (:func:`nas.width_search.warm_up`) of a search whose
    options differ from this one's in :data:`WARMUP_INDEPENDENT` options at most; one that
    stopped before its last warm-up epoch only with ``unfinished`` (the warm-up itself
    resuming)."""
    state = read_checkpoint(path, SEARCH_FORMAT, "warm-up")
    done = [r["phase"] for r in state["records"]]
    epochs = run.config.warmup_epochs
    whole = done == ["warmup"] * epochs
    if warmup_dict(stored_options(state["config"])) != warmup_dict(config_dict(run.config)) or not (
        whole or (unfinished and done == ["warmup"] * len(done) and len(done) < epochs)
    ):
        raise ConfigError(
            f"cannot start from the warm-up {path}: it was written with other options "
            "or is unfinished"
        )
    _restore(run, state, arch_optimizer=False)  # Adam has not stepped; keep this arch_lr
    run.records = [replace(r, tau=run.config.tau0) for r in run.records]


def _restore(run: SearchRun, state: dict[str, Any], *, arch_optimizer: bool) -> None:
    load_weights(run.supernet.model, state["supernet"])
    run.strategy.load_state_dict(state["strategy"])
    run.w_opt.load_state_dict(state["w_opt"])
    run.w_sched.load_state_dict(state["w_sched"])
    if arch_optimizer:  # a shared warm-up has not stepped them: this search's own stand
        if run.a_opt is not None:
            run.a_opt.load_state_dict(state["a_opt"])
        run.budget.load_state_dict(state["budget"])
    run.records = [SearchRecord(**r) for r in state["records"]]
    run.seconds = float(state["seconds"])
    restore_rng(state["rng"], run.device)
    for name in ("weight_loader", "arch_loader", "val_loader"):
        restore_loader(getattr(run, name), state[name])
