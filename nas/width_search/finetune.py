"""After the search: the found network extracted (or rebuilt), fine-tuned, and its numbers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from nas.cost import ResolvedBudget
from nas.engine import evaluate, seed_everything
from nas.engine.finetuning import finetune, uniform_twin
from nas.supernet import extract_at
from nas.width_search.config import SearchConfig
from nas.width_search.records import SearchOutcome
from search_spaces import WidthSpec

__all__ = [
    "check_compare",
    "extract_searched",
    "finetune",
    "starting_network",
    "summarize",
    "uniform_twin",
]


# -- before the search ---------------------------------------------------------------------------
def check_compare(budget: ResolvedBudget, config: SearchConfig) -> None:
    """With ``--compare``: refuses (:class:`ConfigError`, before any work) a budget in whose
    band no uniform-width network lies, in MACs or in the budget's unit (the latency of uniform
    widths is a staircase that can step over the whole band)."""
    if config.compare:
        uniform_twin(budget, budget.target, multiple=config.width_multiple)


# -- after the search ----------------------------------------------------------------------------
def extract_searched(outcome: SearchOutcome) -> nn.Module:
    """The standalone network of the found spec, with the supernet's (inherited) weights."""
    return extract_at(outcome.supernet, outcome.spec, outcome.calibration)


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


def summarize(
    outcome: SearchOutcome,
    small: nn.Module,
    baseline_acc: float,
    test_loader: Iterable[Any],
    val_loader: Iterable[Any],
    config: SearchConfig,
) -> dict[str, Any]:
    """What ``metrics.json`` holds: test accuracies are reported, validation ones select. For a
    conditional network (a per-input strategy without ``--static``) ``macs`` is its average over
    the test images."""
    space = outcome.spec.get_space()
    per_input = per_input_metrics(outcome, test_loader, config)
    macs = space.macs(outcome.spec.widths) if outcome.static else per_input["avg_macs"]
    target = outcome.budget.target_macs
    return (
        {
            "space": space.name,
            "baseline_acc": baseline_acc,
            "searched_acc": evaluate(small, test_loader, device=config.device).accuracy,
            "searched_val_acc": evaluate(small, val_loader, device=config.device).accuracy,
            "macs": macs,
            "flops": 2 * macs,
            "macs_ratio": macs / space.macs(),
            "target_macs": target,
            "target_macs_ratio": None if target is None else target / space.macs(),
            "params": space.params(outcome.spec.widths),
            "params_ratio": space.params(outcome.spec.widths) / space.params(),
            "stage_width_ratios": outcome.spec.stage_width_ratios(),
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
            "conditional": not outcome.static,
            "cost": config.cost,
        }
        | per_input
        | latency_metrics(outcome)
    )


def latency_metrics(outcome: SearchOutcome) -> dict[str, Any]:
    """A latency search's network: its latency predicted by the table and measured here (same
    device, batch and threads as the table), beside the full network's, and the target."""
    from nas.cost.latency import LatencyCost
    from nas.cost.timing import latency_report

    budget = outcome.budget
    if not isinstance(budget.cost, LatencyCost) or not outcome.static:
        return {}
    return latency_report(budget.cost, dict(outcome.spec.widths)) | {
        "target_latency_ms": budget.target,
        "target_latency_ratio": budget.ratio,
    }


@torch.no_grad()
def per_input_metrics(
    outcome: SearchOutcome, test_loader: Iterable[Any], config: SearchConfig
) -> dict[str, Any]:
    """A per-input strategy's conditional network (``outcome.conditional``: fine-tuned when it
    is the deliverable, as the search left it beside a ``--static`` pruning): its MACs per test
    image (counted exactly from the gates open for each image; mean, p50, p95), the gate
    networks' own MACs, and its test accuracy."""
    from nas.gates.deploy import conditional_macs, gate_macs

    model = outcome.conditional
    if model is None:
        return {}
    space = outcome.spec.get_space()
    device = torch.device(config.device)
    values = conditional_macs(model, space, test_loader, device).double()
    full = space.macs()
    calibration = (
        {
            "gate_offset": outcome.gate_offset,
            "calibrated_macs_ratio": outcome.calibrated_macs_ratio,
        }
        if outcome.gate_offset is not None
        else {}
    )
    return (
        {
            "avg_macs": float(values.mean()),
            "avg_macs_ratio": float(values.mean()) / full,
            "p50_macs": float(values.quantile(0.5)),
            "p95_macs": float(values.quantile(0.95)),
            "p95_macs_ratio": float(values.quantile(0.95)) / full,
            "gate_macs": gate_macs(model, space),
            "conditional_acc": evaluate(model, test_loader, device=device).accuracy,
        }
        | ({"static_share": config.static_share} if outcome.static else {})
        | calibration
    )
