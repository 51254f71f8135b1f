"""Pruning by a criterion under a MAC budget: score, allocate, extract, fine-tune.

:func:`prune_network` is the whole method on a trained full network and loaders:

1. **score** every channel with the criterion (:func:`nas.importance.channel_scores`; the
   data-driven ``chip`` and ``hrel`` on the first ``score_images`` training images), timed;
2. **allocate** widths under the budget (:data:`ALLOCATIONS`): ``uniform``, ``global``,
   ``greedy`` (validation accuracy of candidate cuts, BN recalibrated) or ``spec``;
3. **extract** the standalone network keeping each unit's best-scored channels, its BN
   statistics re-estimated on a few training batches for its widths (the one-shot accuracy
   before fine-tuning is reported), or a seeded new network with ``from_scratch``;
4. **fine-tune** with distillation from the full network, and with ``compare`` a reference
   (:func:`compare_reference`) trained exactly the same way
   (:func:`nas.engine.finetune_and_compare`): the uniform-width network of the same MACs with
   the same criterion's channels, from the same full weights; or, where the pruned widths are
   the uniform ones (``uniform`` allocation), the same widths with seeded random channels, the
   control the criterion must beat.

Reading training batches for scoring, allocation and calibration leaves the loader's shuffling
state as it was, so the fine-tuning sees the same batches whatever the criterion.
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from nas.cost import MacsCost, ResolvedBudget, parse_target_macs
from nas.engine import (
    FinetuneConfig,
    evaluate,
    finetune_and_compare,
    loader_state,
    restore_loader,
    seed_everything,
    uniform_twin,
)
from nas.errors import ConfigError
from nas.extraction import extract
from nas.importance import CRITERIA, channel_order, channel_scores
from nas.options import option
from nas.pruning.allocation import allocate, check_reachable
from nas.pruning.evaluation import masked_accuracy
from nas.supernet import CALIBRATION_BATCHES, recalibrate_bn, take_batches
from search_spaces import SearchSpace, WidthSpec

__all__ = [
    "PruneConfig",
    "Pruning",
    "Reference",
    "compare_reference",
    "prune_budget",
    "prune_network",
    "score_and_allocate",
]


@dataclass
class PruneConfig(FinetuneConfig):
    """Every knob of a criterion pruning besides the data (``nas prune``)."""

    group: ClassVar[str] = "prune"

    criterion: str = option(
        "l1",
        "channel-importance criterion: which channels each unit keeps",
        choices="nas.importance:CRITERIA",
    )
    allocation: str = option(
        "uniform",
        "how the scores become widths under the budget (global cuts the units whose channels "
        "cost the most MACs first, to one channel if need be: see the method table's results "
        "page)",
        choices="nas.pruning:ALLOCATIONS",
    )
    arch: str | None = option(
        None, "--allocation spec: the width spec (arch.json, e.g. a search's) to keep"
    )
    score_images: int = option(
        256, "training images the data-driven criteria (chip, hrel, function) score on", ge=1
    )
    greedy_step: float = option(
        0.1,
        "--allocation greedy: the cut per step, as a share of each unit's full width",
        gt=0,
        le=0.5,
    )

    def check(self) -> None:
        super().check()
        if self.arch is not None and self.allocation != "spec":
            raise ConfigError(
                f"--arch gives the widths of --allocation spec; with --allocation "
                f"{self.allocation} the widths come from the scores (drop --arch)"
            )
        if self.compare and self.from_scratch and self.allocation == "uniform":
            raise ConfigError(_NOTHING_TO_COMPARE)


def prune_budget(
    config: PruneConfig, space: SearchSpace, spec: WidthSpec | None = None
) -> ResolvedBudget:
    """The run's budget (``--target-macs`` in MACs, resolved once), refused (one line) where no
    network of ``space`` reaches it or ``spec`` is for another space; checked before anything
    is trained or written."""
    if config.allocation == "spec" and spec is None:
        raise ConfigError("--allocation spec needs --arch arch.json (the widths to keep)")
    target = parse_target_macs(config.target_macs, space.macs())
    check_reachable(space, target, config.tolerance)
    if spec is not None and spec.space != space.name:
        raise ConfigError(f"--arch {config.arch} is a width spec of {spec.space}, not {space.name}")
    every = {u.name: range(1, u.max_width + 1) for u in space.units}
    return ResolvedBudget(target, config.tolerance, MacsCost(space), every)


_NOTHING_TO_COMPARE = (
    "--compare with --from-scratch: the pruned widths are the uniform ones, and retrained from "
    "scratch no choice of channels changes the network, so its reference would be the same "
    "network (drop --compare or --from-scratch)"
)


@dataclass
class Pruning:
    """What scoring and allocation decided, before any fine-tuning."""

    spec: WidthSpec
    scores: dict[str, Tensor]
    order: dict[str, Tensor]  # per unit, channel indices best first
    scoring_seconds: float
    allocation_seconds: float


def score_and_allocate(
    model: nn.Module,
    space: SearchSpace,
    train_loader: Any,
    val_loader: Iterable[Any],
    config: PruneConfig,
    budget: ResolvedBudget,
    *,
    spec: WidthSpec | None = None,
) -> Pruning:
    """Scores of every channel of ``model`` under ``config.criterion`` and widths under the
    ``budget`` (:func:`prune_budget`) by ``config.allocation`` (``spec``: the widths of
    ``--allocation spec``). The training loader is left where it was."""
    entry = CRITERIA.get(config.criterion)
    accepted = inspect.signature(entry.score).parameters
    options = {
        k: v for k, v in (("seed", config.seed), ("images", config.score_images)) if k in accepted
    }
    begin = loader_state(train_loader)
    try:
        start = time.perf_counter()
        scores = channel_scores(
            model, space, config.criterion, train_loader if entry.needs_data else None, **options
        )
        scoring_seconds = time.perf_counter() - start
        order = {u: torch.argsort(s, descending=True, stable=True) for u, s in scores.items()}
        start = time.perf_counter()
        accuracy = (
            masked_accuracy(model, space, order, train_loader, val_loader)
            if config.allocation == "greedy"
            else None
        )
        widths = allocate(
            config.allocation,
            space,
            scores,
            budget.target,
            tolerance=budget.tolerance,
            spec=spec,
            evaluate=accuracy,
            step=config.greedy_step,
        )
        allocation_seconds = time.perf_counter() - start
    finally:
        restore_loader(train_loader, begin)
    return Pruning(space.spec(widths), scores, order, scoring_seconds, allocation_seconds)


@dataclass
class Reference:
    """What ``--compare`` fine-tunes beside the pruned network: its widths, channels (the
    order extraction keeps from) and, in words, what it is."""

    spec: WidthSpec
    order: dict[str, Tensor]
    description: str


def compare_reference(
    model: nn.Module,
    space: SearchSpace,
    pruning: Pruning,
    config: PruneConfig,
    budget: ResolvedBudget,
) -> Reference:
    """The reference of ``--compare``: the network the criterion and the allocation must beat.

    Where the pruned widths differ from the uniform widths of the same MACs, it is those
    uniform widths with the criterion's channels (what the allocation gains). Where they are
    the same (``uniform`` allocation, or a spec or allocation that lands there), the uniform
    network would be the pruned network itself; the reference is then the same widths with
    seeded random channels (the ``random`` criterion at ``config.seed``, or the next seed when
    the criterion is ``random`` itself): what the criterion's choice of channels gains."""
    if config.allocation == "uniform":
        uniform = pruning.spec
    else:
        uniform = uniform_twin(budget, pruning.spec.macs())
    if dict(uniform.widths) != dict(pruning.spec.widths):
        if config.from_scratch:
            channels = "trained from scratch"
        elif config.criterion in ("uniform", "first"):
            channels = "the first channels"
        else:
            channels = f"{config.criterion} channels"
        return Reference(
            uniform, dict(pruning.order), f"uniform widths of the same MACs, {channels}"
        )
    if config.from_scratch:
        raise ConfigError(_NOTHING_TO_COMPARE)
    seed = config.seed + 1 if config.criterion == "random" else config.seed
    order = channel_order(model, space, "random", seed=seed)
    return Reference(pruning.spec, order, f"same widths, seeded random channels (seed {seed})")


def prune_network(
    model: nn.Module,
    space: SearchSpace,
    train_loader: Any,
    val_loader: Iterable[Any],
    test_loader: Iterable[Any],
    config: PruneConfig,
    *,
    baseline_acc: float,
    spec: WidthSpec | None = None,
    budget: ResolvedBudget | None = None,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, Pruning, dict[str, Any]]:
    """Score, allocate, extract and fine-tune (see the module); returns the pruned network, the
    pruning decided and its numbers (what ``metrics.json`` holds). ``model`` is not changed.
    ``budget``: the run's, when the caller resolved it (default: :func:`prune_budget`)."""
    config.validate()
    budget = budget or prune_budget(config, space, spec)
    device = torch.device(config.device)
    model = copy.deepcopy(model).to(device).eval()  # the caller's network keeps mode and device
    pruning = score_and_allocate(model, space, train_loader, val_loader, config, budget, spec=spec)
    reference = compare_reference(model, space, pruning, config, budget) if config.compare else None
    begin = loader_state(train_loader)
    calibration = take_batches(train_loader, CALIBRATION_BATCHES)
    restore_loader(train_loader, begin)

    def start(widths: WidthSpec, order: dict[str, Tensor] = pruning.order) -> nn.Module:
        if config.from_scratch:
            seed_everything(config.seed)
            return space.build(widths.widths).to(device)
        small = extract(model, widths, order).to(device)
        recalibrate_bn(small, calibration, device)
        return small.eval()

    def start_reference(widths: WidthSpec) -> nn.Module:
        assert reference is not None  # called with --compare only
        return start(widths, reference.order)

    oneshot = (  # the cut network before fine-tuning (nothing to say of a random one)
        None
        if config.from_scratch
        else evaluate(start(pruning.spec), val_loader, device=device).accuracy
    )
    small, twin = finetune_and_compare(
        start,
        pruning.spec,
        model,
        train_loader,
        val_loader,
        test_loader,
        config,
        twin=reference.spec if reference is not None else None,
        twin_start=start_reference,
        reference=reference.description if reference is not None else "",
        out=out,
        resume=resume,
        progress=progress,
    )
    macs, params = pruning.spec.macs(), pruning.spec.params()
    target = budget.target
    metrics = {
        "space": space.name,
        "criterion": config.criterion,
        "allocation": config.allocation,
        "baseline_acc": baseline_acc,
        "baseline_macs": space.macs(),
        "pruned_acc": evaluate(small, test_loader, device=device).accuracy,
        "pruned_val_acc": evaluate(small, val_loader, device=device).accuracy,
        "oneshot_val_acc": oneshot,
        "macs": macs,
        "flops": 2 * macs,
        "macs_ratio": macs / space.macs(),
        "target_macs": target,
        "target_macs_ratio": target / space.macs(),
        "params": params,
        "params_ratio": params / space.params(),
        "scoring_seconds": round(pruning.scoring_seconds, 3),
        "allocation_seconds": round(pruning.allocation_seconds, 3),
        "finetune_epochs": config.finetune_epochs,
        "from_scratch": config.from_scratch,
        "widths": dict(pruning.spec.widths),
    } | twin
    return small, pruning, metrics
