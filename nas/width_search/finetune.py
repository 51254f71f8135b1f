"""After the search: the found network extracted (or rebuilt), fine-tuned, and its numbers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from torch import nn

from nas.engine import evaluate, seed_everything, train_model
from nas.errors import ConfigError
from nas.supernet import extract_at
from nas.width_search.config import SearchConfig
from nas.width_search.records import SearchOutcome
from search_spaces import SearchSpace, WidthSpec

__all__ = ["extract_searched", "finetune", "starting_network", "summarize", "uniform_twin"]


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


def starting_network(
    outcome: SearchOutcome, config: SearchConfig, spec: WidthSpec | None = None
) -> nn.Module:
    """What fine-tuning starts from: the network of ``spec`` (default: the found one) with the
    supernet's weights and BN statistics for its widths, or seeded new weights with
    ``from_scratch``."""
    spec = spec or outcome.spec
    if config.from_scratch:
        seed_everything(config.seed)
        return spec.get_space().build(spec.widths)
    return extract_at(outcome.supernet, spec, outcome.calibration)


def uniform_twin(space: SearchSpace, macs: float, config: SearchConfig) -> WidthSpec:
    """The uniform-width spec (one ratio for every unit, ``config.width_multiple``) whose MACs
    come closest to ``macs`` within the tolerance of the target; a :class:`ConfigError` where
    none lies there (say the rounding of narrow units leaves no uniform width there)."""
    target = config.target_for(space)
    full = space.macs()
    candidates = [  # nearest to the searched network's MACs, else nearest to the target
        space.uniform_widths_for_macs(min(1.0, m / full), config.width_multiple)
        for m in (macs, target)
    ]
    fitting = [w for w in candidates if abs(space.macs(w) / target - 1) <= config.tolerance]
    widths = min(fitting or candidates, key=lambda w: abs(space.macs(w) - macs))
    got = space.macs(widths)
    if not fitting:
        raise ConfigError(
            f"--compare: no uniform width of {space.name} lies within --tolerance "
            f"{config.tolerance:g} of the target {target:,.0f} MACs (the nearest has "
            f"{got:,} MACs, {got / full:.1%} of full); widen --tolerance or change --target-macs"
        )
    return space.spec(widths)


def summarize(
    outcome: SearchOutcome,
    small: nn.Module,
    baseline_acc: float,
    test_loader: Iterable[Any],
    val_loader: Iterable[Any],
    config: SearchConfig,
) -> dict[str, Any]:
    """What ``metrics.json`` holds: test accuracies are reported, validation ones select."""
    space = outcome.spec.get_space()
    macs = space.macs(outcome.spec.widths)
    target = config.target_for(space)
    return {
        "space": space.name,
        "baseline_acc": baseline_acc,
        "searched_acc": evaluate(small, test_loader, device=config.device).accuracy,
        "searched_val_acc": evaluate(small, val_loader, device=config.device).accuracy,
        "macs": macs,
        "flops": 2 * macs,
        "macs_ratio": macs / space.macs(),
        "target_macs": target,
        "target_macs_ratio": target / space.macs(),
        "params": space.params(outcome.spec.widths),
        "params_ratio": space.params(outcome.spec.widths) / space.params(),
        "arch_confidence": outcome.arch_confidence,
        "argmax_macs_ratio": space.macs(outcome.argmax_widths) / space.macs(),
        "projection_shift": outcome.projection_shift,
        "relaxation_gap": outcome.relaxation_gap,
        "relaxation_gap_loss": outcome.relaxation_gap_loss,
        "relaxed_val_acc": outcome.relaxed.accuracy,
        "relaxed_val_loss": outcome.relaxed.loss,
        "argmax_val_acc": outcome.argmax_result.accuracy,
        "delivered_val_acc": outcome.delivered.accuracy,
        "delivered_val_loss": outcome.delivered.loss,
        "search_seconds": round(outcome.seconds, 2),
        "strategy": config.strategy,
        "from_scratch": config.from_scratch,
    }
