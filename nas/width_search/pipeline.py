"""The whole search as a library call: :func:`run_search` (what ``nas search`` runs, into a run
directory) and its in-memory twin :func:`search`.

The job: the baseline (trained or loaded), the search (:func:`nas.width_search.search_widths`),
the choice of the final widths by the ``--select`` method (:data:`nas.selection.SELECTIONS`:
the projected argmax, or the GCN predictor's pick), extraction, fine-tuning with distillation,
and the files. :func:`run_search` writes them into a run directory; :func:`search` does the same
in memory for your own trained network and loaders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

import search_spaces
from nas.cost import ResolvedBudget
from nas.data import DataBundle
from nas.engine import (
    TrainConfig,
    default_reference,
    evaluate,
    finetune_and_compare,
    loader_states,
    restore_loaders,
    uniform_staircase,
    uniform_twin,
)
from nas.errors import ConfigError
from nas.extraction import save_model
from nas.gates.deploy import calibrate_gates, conditional_macs, save_conditional
from nas.io import write_json
from nas.plots import plot_search_curves, plot_widths
from nas.rundir import run_output
from nas.runs import (
    RunOptions,
    check_search_out,
    initial_weights,
    resolve_threads,
    resolved_args,
    search_data,
    torch_threads,
    train_full,
    write_or_check_args,
)
from nas.selection import (
    GRID_CHOOSERS,
    Choice,
    SelectionRequest,
    check_band,
    check_pool_band,
    choose,
)
from nas.width_search.config import SearchConfig
from nas.width_search.finetune import check_compare, starting_network, summarize
from nas.width_search.loop import search_widths
from nas.width_search.records import SearchOutcome, SearchRecord
from nas.width_search.setup import search_budget
from search_spaces import SearchSpace, WidthSpec

__all__ = [
    "SearchResult",
    "check_select",
    "deliver",
    "run_search",
    "search",
    "select_network",
    "uniform_reference",
]


@dataclass
class SearchResult:
    """The found network and its numbers (also what ``metrics.json`` holds)."""

    spec: WidthSpec
    model: nn.Module
    metrics: dict[str, Any]
    records: list[SearchRecord]


def search(
    model: nn.Module,
    train_loader: Any,
    val_loader: Iterable[Any],
    *,
    test_loader: Iterable[Any] | None = None,
    space: SearchSpace | None = None,
    input_size: tuple[int, int] | None = None,
    config: SearchConfig | None = None,
    progress: bool = True,
) -> SearchResult:
    """Search, extract and fine-tune from a trained full network and your own loaders.

    ``model`` is a full-width network of a registered space, e.g. your own trained
    ``torchvision.models.resnet50`` instance: its space is recognised from its tensors (pass
    ``input_size`` or it is read from the first training batch). Accuracies are measured on
    ``test_loader`` (or the validation loader if there is none).
    """
    cfg = config or SearchConfig()
    cfg.validate()
    if space is None:
        size = input_size or _batch_size_hw(train_loader)
        space = search_spaces.identify(model, input_size=size)
    budget = search_budget(cfg, space)  # resolved once; refusals before any work
    check_compare(budget, cfg)
    check_select(budget, cfg)
    eval_loader = test_loader if test_loader is not None else val_loader
    baseline_acc = evaluate(model, eval_loader, device=cfg.device).accuracy
    outcome = search_widths(
        model, space, train_loader, val_loader, config=cfg, budget=budget, progress=progress
    )
    outcome, chosen = select_network(
        outcome, model, train_loader, val_loader, cfg, progress=progress
    )
    small, metrics = deliver(
        outcome,
        model,
        train_loader,
        val_loader,
        eval_loader,
        cfg,
        baseline_acc=baseline_acc,
        progress=progress,
    )
    if chosen is not None:
        metrics |= chosen.metrics()
    return SearchResult(outcome.spec, small, metrics, outcome.records)


def deliver(
    outcome: SearchOutcome,
    teacher: nn.Module,
    train_loader: Any,
    val_loader: Iterable[Any],
    test_loader: Iterable[Any],
    config: SearchConfig,
    *,
    baseline_acc: float,
    out: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """The found network fine-tuned (or retrained) and its numbers (a per-input strategy without
    ``--static``: its conditional network, fine-tuned under fixed gates); with ``config.compare``
    also the uniform-width network of the same cost (:func:`_twin`) from the same final supernet (BN
    recalibrated for its widths), fine-tuned exactly the same way: the same options, teacher,
    seed and batches (the loader is rewound to where the found network's fine-tuning began)."""
    conditional = None if outcome.static else outcome.conditional
    twin_spec = _twin(outcome, val_loader, config) if config.compare else None

    def start(spec: WidthSpec) -> nn.Module:
        if conditional is not None and spec is outcome.spec:
            return conditional  # fine-tuned under the gates the search learned
        return starting_network(outcome, config, spec)

    small, compared = finetune_and_compare(
        start,
        outcome.spec,
        teacher,
        train_loader,
        val_loader,
        test_loader,
        config,
        twin=twin_spec,
        reference=default_reference(config, outcome.budget),
        out=out,
        resume=resume,
        progress=progress,
    )
    if conditional is not None and config.calibrate_gates:
        recalibrate_gates(outcome, val_loader, config)
    metrics = summarize(outcome, small, baseline_acc, test_loader, val_loader, config)
    if twin_spec is not None and "latency_ms" in metrics:  # the twin's latency too
        from nas.cost.latency import LatencyCost
        from nas.cost.timing import latency_report

        cost = outcome.budget.cost
        assert isinstance(cost, LatencyCost)
        twin_latency = latency_report(cost, dict(twin_spec.widths))
        compared |= {
            f"uniform_{k}": twin_latency[k]
            for k in ("latency_ms", "latency_ratio", "predicted_latency_ms")
        }
    return small, metrics | compared


def recalibrate_gates(
    outcome: SearchOutcome, val_loader: Iterable[Any], config: SearchConfig
) -> None:
    """The fine-tuned conditional network's gate threshold calibrated again on the validation
    images: fine-tuning moved its gates' inputs, so their average MACs (BN statistics as
    fine-tuned). Adds the shift to ``outcome.gate_offset``."""
    model = outcome.conditional
    assert model is not None
    budget = outcome.budget
    shift, ratio = calibrate_gates(
        model, budget.space, val_loader, config.device, budget.ratio, budget.tolerance
    )
    outcome.gate_offset = (outcome.gate_offset or 0.0) + shift
    outcome.calibrated_macs_ratio = ratio


def _twin(outcome: SearchOutcome, val_loader: Iterable[Any], config: SearchConfig) -> WidthSpec:
    """The uniform-width network ``--compare`` fine-tunes beside the found one: of the same
    cost (MACs, or predicted latency for a latency search), or of a conditional network's
    average MACs (on the validation split)."""
    budget = outcome.budget
    if not outcome.static and outcome.conditional is not None:
        macs = conditional_macs(outcome.conditional, budget.space, val_loader, config.device)
        value = float(macs.double().mean())
    else:
        value = budget.cost.exact(dict(outcome.spec.widths))
    return uniform_twin(budget, value, multiple=config.width_multiple)


def select_network(
    outcome: SearchOutcome,
    teacher: nn.Module,
    train_loader: Any,
    val_loader: Iterable[Any],
    config: SearchConfig,
    *,
    progress: bool = True,
) -> tuple[SearchOutcome, Choice | None]:
    """The final widths by ``config.select`` (:data:`~nas.selection.SELECTIONS`), scored on the
    supernet beside the uniform width of the budget: the outcome with the chosen spec, and the
    :class:`~nas.selection.Choice` (None for a conditional network, whose widths change per
    input)."""
    if not outcome.static and outcome.conditional is not None:
        return outcome, None
    budget = outcome.budget
    request = SelectionRequest(
        supernet=outcome.supernet,
        budget=budget,
        calibration=outcome.calibration,
        train_loader=train_loader,
        val_loader=val_loader,
        teacher=teacher if config.kd_alpha > 0 else None,
        finetune=config.finetune_config(),
        distill=config.distill(),
        rank=config.rank_config(),
        initial=outcome.spec,
        uniform=uniform_reference(budget, config),
        log_probs=outcome.strategy.choice_log_probs(),
        population=config.population,
        generations=config.generations,
        seed=config.seed,
        progress=progress,
    )
    chosen = choose(config.select, request)
    # the delivered widths' validation numbers (and the relaxation gap) are the chosen ones'
    return replace(outcome, spec=chosen.spec, delivered=chosen.delivered), chosen


def uniform_reference(budget: ResolvedBudget, config: SearchConfig) -> WidthSpec:
    """The uniform widths of the budget that a chooser's pick is scored beside: ``--compare``'s
    twin at the target where one lies in the band, else the uniform widths nearest to it."""
    try:
        return uniform_twin(budget, budget.target, multiple=config.width_multiple)
    except ConfigError:  # none in the band: the uniform widths nearest to the target
        staircase = uniform_staircase(budget.cost, config.width_multiple)
        nearest = min(staircase, key=lambda cw: abs(cw[0] - budget.target))
        return budget.space.spec(nearest[1])


def check_select(budget: ResolvedBudget, config: SearchConfig) -> None:
    """Refuse, before any work, a budget the ``--select`` chooser cannot land in: no assignment
    of the width choices in its band (the predictor's pool band, or the projection's)."""
    if config.select == "predictor":
        check_pool_band(
            budget.space,
            budget.choices,
            budget.target,
            budget.tolerance,
            config.rank_config(),
            budget.cost,
        )
    elif config.select in GRID_CHOOSERS:
        check_band(budget, config.select)


def _batch_size_hw(loader: Iterable[Any]) -> tuple[int, int]:
    x, _ = next(iter(loader))
    return int(x.shape[-2]), int(x.shape[-1])


def run_search(
    options: RunOptions, config: SearchConfig, *, warmup: Path | None = None
) -> dict[str, Any]:
    """``nas search``: baseline (trained or loaded), search, extraction, fine-tuning, files.

    Writes into ``options.out_dir``: ``arch.json``, ``model.pt``, ``model.pt2``, ``model.ts``,
    ``metrics.json``, ``summary.csv`` (search epochs), ``args.yaml``, ``widths.png``,
    ``search_curves.png``, a per-epoch ``search_checkpoint.pt``, and the sub-directories
    ``baseline/`` and ``finetune/`` with their own summaries and checkpoints. With
    ``resume`` an interrupted run continues to the result it would have reached. ``warmup``:
    a shared warm-up of this baseline and data (:func:`nas.width_search.warm_up`, as ``nas sweep``
    makes one) to start the search from, with the same result.
    """
    o, c = options.validate(), config.validate()
    out = check_search_out(o)
    threads = resolve_threads(o.threads, out if o.resume else None)
    o = replace(o, threads=threads)
    base_config = TrainConfig(
        epochs=o.baseline_epochs, lr=o.baseline_lr, seed=c.seed, device=c.device
    )
    base_config.validate()
    data, space = search_data(o, c.seed)
    # the budget, resolved once: impossible budgets and foreign latency tables fail before
    # anything is written
    budget = search_budget(c, space, threads=threads)
    check_compare(budget, c)
    check_select(budget, c)
    initial = initial_weights(o.weights, space)
    resolved = resolved_args(o, c, data.describe())
    with (
        run_output(
            out, overwrite=o.overwrite, resume=o.resume, command="search", inputs=o.inputs()
        ),
        torch_threads(threads),
    ):
        return _search_to_dir(out, o, c, data, budget, initial, resolved, base_config, warmup)


def _search_to_dir(
    out: Path,
    o: RunOptions,
    c: SearchConfig,
    data: DataBundle,
    budget: ResolvedBudget,
    initial: dict[str, torch.Tensor] | None,
    resolved: dict[str, Any],
    base_config: TrainConfig,
    warmup: Path | None,
) -> dict[str, Any]:
    assert data.val is not None  # checked by run_search
    space = budget.space
    write_or_check_args(out, resolved, resume=o.resume)

    fresh = loader_states(data)
    baseline = train_full(
        space, data, initial, base_config, out / "baseline", resume=o.resume, progress=o.progress
    )
    # the search starts from fresh loaders, so it does not depend on whether the baseline was
    # trained here or loaded (--weights, a sweep's trials): both find the same network
    restore_loaders(data, fresh)
    baseline_acc = evaluate(baseline, data.test, device=c.device).accuracy
    outcome = search_widths(
        baseline,
        space,
        data.train,
        data.val,
        config=c,
        out_dir=out,
        resume=o.resume,
        warmup=warmup,
        budget=budget,
        progress=o.progress,
    )
    outcome, chosen = select_network(
        outcome, baseline, data.train, data.val, c, progress=o.progress
    )
    if chosen is not None and chosen.predictor is not None:
        chosen.predictor.save(out / "predictor.pt")
        write_json(out / "selection.json", chosen.details)  # rank settings, pool, top-k
    small, metrics = deliver(
        outcome,
        baseline,
        data.train,
        data.val,
        data.test,
        c,
        baseline_acc=baseline_acc,
        out=out,
        resume=o.resume,
        progress=o.progress,
    )
    if chosen is not None:
        metrics |= chosen.metrics()
    metrics |= {
        "dataset": o.dataset,
        "baseline_macs": space.macs(),
        "finetune_epochs": c.finetune_epochs,
    }
    if outcome.static:  # the standalone network (a conditional one lives in conditional/)
        save_model(small, outcome.spec, out)
    if outcome.conditional is not None:  # a per-input strategy: its conditional network
        save_conditional(
            outcome.conditional, space, outcome.strategy.group_size, out / "conditional"
        )
    write_json(out / "metrics.json", metrics)
    if outcome.static:
        uniform = chosen.uniform_spec if chosen is not None else None
        plot_widths(outcome.spec, out / "widths.png", uniform=uniform)
    plot_search_curves(outcome.records, metrics["target_macs_ratio"], out / "search_curves.png")
    return metrics
