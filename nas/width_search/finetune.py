"""After the search: the found network extracted (or rebuilt), fine-tuned, and its numbers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from nas.engine import evaluate, seed_everything, train_model
from nas.supernet import extract_at
from nas.width_search.config import SearchConfig
from nas.width_search.records import SearchOutcome

__all__ = ["extract_searched", "finetune", "starting_network", "summarize"]


# -- after the search ----------------------------------------------------------------------------
def extract_searched(outcome: SearchOutcome) -> nn.Module:
    """The standalone network of the found spec, with the supernet's (inherited) weights."""
    return extract_at(outcome.supernet, outcome.spec, outcome.calibration)


def finetune(
    small: nn.Module,
    teacher: nn.Module | None,
    train_loader: Any,
    val_loader: Iterable[Any] | None,
    *,
    config: SearchConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> None:
    """Fine-tune (or, with ``from_scratch``, retrain) the found network, distilling from
    ``teacher`` when ``kd_alpha > 0``."""
    if config.finetune_epochs == 0:
        return
    use_teacher = teacher if config.kd_alpha > 0 else None
    train_model(
        small,
        train_loader,
        config=config.finetune_config(),
        val_loader=val_loader,
        teacher=use_teacher,
        distill=config.distill(),
        out_dir=out_dir,
        checkpoint=out_dir is not None,
        resume=resume,
        progress=progress,
        desc="retrain" if config.from_scratch else "fine-tune",
    )


def starting_network(outcome: SearchOutcome, config: SearchConfig) -> nn.Module:
    if config.from_scratch:
        seed_everything(config.seed)
        return outcome.spec.get_space().build(outcome.spec.widths)
    return extract_searched(outcome)


def summarize(
    outcome: SearchOutcome,
    small: nn.Module,
    baseline_acc: float,
    eval_loader: Iterable[Any],
    config: SearchConfig,
) -> dict[str, Any]:
    space = outcome.spec.get_space()
    macs = space.macs(outcome.spec.widths)
    return {
        "space": space.name,
        "baseline_acc": baseline_acc,
        "searched_acc": evaluate(small, eval_loader, device=config.device).accuracy,
        "macs": macs,
        "flops": 2 * macs,
        "macs_ratio": macs / space.macs(),
        "target_macs": config.target_for(space),
        "target_macs_ratio": config.target_for(space) / space.macs(),
        "params": space.params(outcome.spec.widths),
        "params_ratio": space.params(outcome.spec.widths) / space.params(),
        "relaxation_gap": outcome.relaxation_gap,
        "relaxed_val_acc": outcome.relaxed_acc,
        "discrete_val_acc": outcome.discrete_acc,
        "search_seconds": round(outcome.seconds, 2),
        "strategy": config.strategy,
        "from_scratch": config.from_scratch,
    }
