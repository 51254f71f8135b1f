"""``nas search`` and its Python twin :func:`search`: the whole search job.

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
from nas.cost import CostModel, MacsCost
from nas.data import DataBundle
from nas.engine import (
    TrainConfig,
    evaluate,
    finetune_and_compare,
    loader_states,
    restore_loaders,
    uniform_staircase,
    uniform_twin_at_cost,
)
from nas.engine.config import ParallelOptions
from nas.errors import ConfigError
from nas.extraction import save_model
from nas.gates.deploy import calibrate_gates, conditional_macs, save_conditional
from nas.io import write_json
from nas.jobs.base import Command
from nas.jobs.common import (
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
from nas.jobs.format import human
from nas.plots import plot_search_curves, plot_widths
from nas.rundir import run_output
from nas.selection import Band, Choice, SelectionRequest, check_band, check_pool_band, choose
from nas.width_search import (
    SearchConfig,
    SearchOutcome,
    SearchRecord,
    check_compare,
    search_widths,
    starting_network,
    summarize,
    uniform_twin,
)
from search_spaces import SearchSpace, WidthSpec

__all__ = ["COMMAND", "SearchResult", "deliver", "run_search", "search", "select_network"]


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
    check_compare(space, cfg)  # refused before any work
    check_select(space, cfg)
    eval_loader = test_loader if test_loader is not None else val_loader
    baseline_acc = evaluate(model, eval_loader, device=cfg.device).accuracy
    outcome = search_widths(model, space, train_loader, val_loader, config=cfg, progress=progress)
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
        multiple=config.width_multiple,
        twin=twin_spec,
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

        assert isinstance(outcome.cost, LatencyCost)
        twin_latency = latency_report(outcome.cost, dict(twin_spec.widths))
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
    space = outcome.spec.get_space()
    target = config.target_for(space) / space.macs()
    shift, ratio = calibrate_gates(
        model, space, val_loader, config.device, target, config.tolerance
    )
    outcome.gate_offset = (outcome.gate_offset or 0.0) + shift
    outcome.calibrated_macs_ratio = ratio


def _twin(outcome: SearchOutcome, val_loader: Iterable[Any], config: SearchConfig) -> WidthSpec:
    """The uniform-width network ``--compare`` fine-tunes beside the found one: of the same
    MACs, of a conditional network's average MACs (on the validation split), or of the same
    predicted latency for a latency search."""
    space = outcome.spec.get_space()
    multiple = config.width_multiple
    if not outcome.static and outcome.conditional is not None:
        macs = conditional_macs(outcome.conditional, space, val_loader, config.device)
        return uniform_twin(space, float(macs.double().mean()), config, multiple=multiple)
    cost = outcome.cost
    if cost is not None and cost.name != "macs":
        value = cost.exact(dict(outcome.spec.widths))
        target = config.cost_target(space, cost)
        return uniform_twin_at_cost(cost, value, target, config.tolerance, multiple=multiple)
    return uniform_twin(space, outcome.spec.macs(), config, multiple=multiple)


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
    space = outcome.spec.get_space()
    cost = outcome.cost
    target = config.cost_target(space, cost)
    request = SelectionRequest(
        supernet=outcome.supernet,
        choices=outcome.strategy.choices,
        target=target,
        tolerance=config.tolerance,
        calibration=outcome.calibration,
        train_loader=train_loader,
        val_loader=val_loader,
        teacher=teacher if config.kd_alpha > 0 else None,
        finetune=config.finetune_config(),
        distill=config.distill(),
        rank=config.rank_config(),
        initial=outcome.spec,
        uniform=uniform_reference(space, config, cost),
        log_probs=outcome.strategy.choice_log_probs(),
        population=config.population,
        generations=config.generations,
        seed=config.seed,
        progress=progress,
        cost=cost,
    )
    chosen = choose(config.select, request)
    # the delivered widths' validation numbers (and the relaxation gap) are the chosen ones'
    return replace(outcome, spec=chosen.spec, delivered=chosen.delivered), chosen


def uniform_reference(
    space: SearchSpace, config: SearchConfig, cost: CostModel | None = None
) -> WidthSpec:
    """The uniform widths of the budget that a chooser's pick is scored beside: ``--compare``'s
    twin at the target where one lies in the band, else the nearest uniform widths in MACs."""
    try:
        if cost is None or cost.name == "macs":
            return uniform_twin(
                space, config.target_for(space), config, multiple=config.width_multiple
            )
        target = config.cost_target(space, cost)
        return uniform_twin_at_cost(
            cost, target, target, config.tolerance, multiple=config.width_multiple
        )
    except ConfigError:  # none in the band: the uniform widths nearest to the target
        cost = cost or MacsCost(space)
        target = config.cost_target(space, cost)
        staircase = uniform_staircase(cost, config.width_multiple)
        return space.spec(min(staircase, key=lambda cw: abs(cw[0] - target))[1])


def check_select(space: SearchSpace, config: SearchConfig, cost: CostModel | None = None) -> None:
    """Refuse, before any work, a budget the ``--select`` chooser cannot land in: no assignment
    of the width choices in its band (the predictor's pool band, or the projection's). The
    cost model (default: the config's) is built only for a chooser that searches the grid."""
    if config.select not in ("predictor", "evolution", "greedy"):
        return
    cost = cost or config.cost_model(space)
    target = config.cost_target(space, cost)
    choices = config.choices(space)
    if config.select == "predictor":
        check_pool_band(space, choices, target, config.tolerance, config.rank_config(), cost)
    else:
        check_band(Band(target, config.tolerance, cost, choices), config.select)


def _batch_size_hw(loader: Iterable[Any]) -> tuple[int, int]:
    x, _ = next(iter(loader))
    return int(x.shape[-2]), int(x.shape[-1])


def run_search(
    options: RunOptions, config: SearchConfig, *, warmup: Path | None = None
) -> dict[str, Any]:
    """``nas search``: baseline (trained or loaded), search, extraction, fine-tuning, files.

    Writes into ``options.out_dir``: ``arch.json``, ``model.pt``, ``model.ts``,
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
    # impossible budgets and foreign latency tables fail before anything is written
    cost = c.cost_model(space, threads)
    c.cost_target(space, cost)  # refuses a target no network of the choices reaches
    check_compare(space, c, cost)
    check_select(space, c, cost)
    initial = initial_weights(o.weights, space)
    resolved = resolved_args(o, c, data.describe())
    with (
        run_output(
            out, overwrite=o.overwrite, resume=o.resume, command="search", inputs=o.inputs()
        ),
        torch_threads(threads),
    ):
        return _search_to_dir(out, o, c, data, space, initial, resolved, base_config, warmup)


def _search_to_dir(
    out: Path,
    o: RunOptions,
    c: SearchConfig,
    data: DataBundle,
    space: SearchSpace,
    initial: dict[str, torch.Tensor] | None,
    resolved: dict[str, Any],
    base_config: TrainConfig,
    warmup: Path | None,
) -> dict[str, Any]:
    assert data.val is not None  # checked by run_search
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
        group = int(getattr(outcome.strategy, "group_size", 1))
        save_conditional(outcome.conditional, space, group, out / "conditional")
    write_json(out / "metrics.json", metrics)
    if outcome.static:
        uniform = chosen.uniform_spec if chosen is not None else None
        plot_widths(outcome.spec, out / "widths.png", uniform=uniform)
    plot_search_curves(outcome.records, metrics["target_macs_ratio"], out / "search_curves.png")
    return metrics


def _cli(options: RunOptions, config: SearchConfig, parallel: ParallelOptions) -> int:
    m = run_search(options, config)
    print(
        f"{m['space']} on {m['dataset']}: baseline {m['baseline_acc']:.2f} % at "
        f"{human(m['baseline_macs'])} MACs -> searched {m['searched_acc']:.2f} % at "
        f"{human(m['macs'])} MACs ({m['macs_ratio']:.1%})"
        + (" on average per image (conditional network)" if m.get("conditional") else "")
        + (
            f", {m['latency_ms']:.2f} ms measured ({m['latency_ratio']:.1%} of full; "
            f"{m['predicted_latency_ms']:.2f} ms predicted, target "
            f"{m['target_latency_ms']:.2f} ms)"
            if "latency_ms" in m
            else ""
        )
        + (
            f"; uniform width {m['uniform_acc']:.2f} % at {human(m['uniform_macs'])} MACs "
            f"({m['uniform_macs_ratio']:.1%})"
            if "uniform_acc" in m
            else ""
        )
        + (
            f"; on validation nothing beat uniform width (one-shot loss "
            f"{m['oneshot_val_loss']:.3f} against uniform's {m['uniform_oneshot_val_loss']:.3f})"
            if m.get("beats_uniform_oneshot") is False
            else ""
        )
        + f"; relaxation gap {m['relaxation_gap']:+.2f} points; search "
        f"{m['search_seconds']:.0f} s -> {options.out_dir}"
    )
    return 0


COMMAND = Command(
    options=(RunOptions, SearchConfig, ParallelOptions),
    run=_cli,
    description="Gumbel-softmax width search under a MAC budget (or a measured latency: --cost "
    "latency). Options may also come from "
    "--config file.yaml (keys as the option names; args.yaml of a run works).",
    config_file=True,
    resumable=True,
    distributed=True,
)
