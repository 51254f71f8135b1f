"""A criterion pruning as a library call: :func:`run_prune` (what ``nas prune`` runs, into a run
directory) and its in-memory twin :func:`prune`.

The job: the full network (``--weights``, else a baseline trained here), the channel scores of
``--criterion``, the widths of ``--allocation`` at ``--target-macs``, extraction of the
best-scored channels and fine-tuning with distillation (:func:`nas.pruning.prune_network`), and
the files a search writes. With ``--compare`` a reference is fine-tuned beside it exactly the
same way (:func:`nas.pruning.compare_reference`): the uniform-width network of the same MACs
with the criterion's channels, or, where the pruned widths are the uniform ones, the same widths
with seeded random channels; ``metrics.json`` says which (``reference``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

import search_spaces
from nas.cost import ResolvedBudget
from nas.data import DataBundle
from nas.engine import TrainConfig, evaluate, loader_states, restore_loaders
from nas.extraction import save_model
from nas.io import atomic_torch_save, atomic_write_text, write_json
from nas.plots import plot_widths
from nas.pruning.prune import PruneConfig, Pruning, prune_budget, prune_network
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
from search_spaces import SearchSpace, WidthSpec

__all__ = ["PruneResult", "prune", "run_prune"]


@dataclass
class PruneResult:
    """The pruned network, its width spec, scores and numbers (what ``metrics.json`` holds)."""

    spec: WidthSpec
    model: nn.Module
    metrics: dict[str, Any]
    scores: dict[str, torch.Tensor]


def prune(
    model: nn.Module,
    train_loader: Any,
    val_loader: Iterable[Any],
    *,
    criterion: str = "l1",
    allocation: str = "uniform",
    target_macs: str | float = "0.5",
    test_loader: Iterable[Any] | None = None,
    space: SearchSpace | None = None,
    input_size: tuple[int, int] | None = None,
    spec: WidthSpec | None = None,
    config: PruneConfig | None = None,
    progress: bool = True,
) -> PruneResult:
    """Prune your own trained full network with a criterion under a MAC budget and fine-tune it.

    ``model``: a full-width network of a registered space, e.g. your trained
    ``torchvision.models.resnet50`` (its space is recognised from its tensors; ``input_size``,
    else read from the first training batch). ``criterion``, ``allocation`` and ``target_macs``
    (a ratio or MACs like ``"60M"``) override ``config``; ``spec`` gives the widths of
    ``allocation="spec"``. Accuracies are measured on ``test_loader`` (or the validation
    loader). ``model`` itself is not changed.
    """
    cfg = replace(
        config or PruneConfig(),
        criterion=criterion,
        allocation=allocation,
        target_macs=str(target_macs),
    ).validate()
    if space is None:
        x, _ = next(iter(train_loader))
        size = input_size or (int(x.shape[-2]), int(x.shape[-1]))
        space = search_spaces.identify(model, input_size=size)
    budget = _check_before_work(cfg, space, spec)
    eval_loader = test_loader if test_loader is not None else val_loader
    baseline_acc = evaluate(model, eval_loader, device=cfg.device).accuracy
    small, pruning, metrics = prune_network(
        model,
        space,
        train_loader,
        val_loader,
        eval_loader,
        cfg,
        baseline_acc=baseline_acc,
        spec=spec,
        budget=budget,
        progress=progress,
    )
    return PruneResult(pruning.spec, small, metrics, pruning.scores)


def _check_before_work(
    config: PruneConfig, space: SearchSpace, spec: WidthSpec | None
) -> ResolvedBudget:
    """The run's budget, resolved once, after every refusal that needs the space: budget, spec,
    a --compare twin of uniform widths (with ``uniform`` allocation the reference has the
    pruned widths themselves)."""
    from nas.engine import uniform_twin

    budget = prune_budget(config, space, spec)
    if config.compare and config.allocation != "uniform":
        uniform_twin(budget, budget.target)
    return budget


def run_prune(options: RunOptions, config: PruneConfig) -> dict[str, Any]:
    """``nas prune``: full network (loaded or trained), scores, widths, fine-tuning, files.

    Writes into ``options.out_dir``: ``arch.json``, ``model.pt``, ``model.pt2``, ``model.ts``,
    ``metrics.json``, ``summary.csv`` (per unit: full and kept width, mean score of the kept and
    of the removed channels), ``scores.pt`` (every channel's score), ``args.yaml``,
    ``widths.png``, and the sub-directories ``baseline/``, ``finetune/`` (and ``uniform/`` with
    ``--compare``) with their own summaries and checkpoints; ``--resume`` continues an
    interrupted run to the result it would have reached.
    """
    o, c = options.validate(), config.validate()
    out = check_search_out(o, command="prune", extra=(c.arch,) if c.arch else ())
    threads = resolve_threads(o.threads, out if o.resume else None)
    o = replace(o, threads=threads)
    base_config = TrainConfig(
        epochs=o.baseline_epochs, lr=o.baseline_lr, seed=c.seed, device=c.device
    )
    base_config.validate()
    data, space = search_data(o, c.seed)
    spec = WidthSpec.load(c.arch) if c.arch else None
    budget = _check_before_work(c, space, spec)
    initial = initial_weights(o.weights, space)
    resolved = resolved_args(o, c, data.describe(), command="prune")
    inputs = [*o.inputs(), *([c.arch] if c.arch else [])]
    with (
        run_output(out, overwrite=o.overwrite, resume=o.resume, command="prune", inputs=inputs),
        torch_threads(threads),
    ):
        write_or_check_args(out, resolved, resume=o.resume)
        return _prune_to_dir(out, o, c, data, space, spec, budget, initial, base_config)


def _prune_to_dir(
    out: Path,
    o: RunOptions,
    c: PruneConfig,
    data: DataBundle,
    space: SearchSpace,
    spec: WidthSpec | None,
    budget: ResolvedBudget,
    initial: dict[str, torch.Tensor] | None,
    base_config: TrainConfig,
) -> dict[str, Any]:
    assert data.val is not None  # checked by search_data
    fresh = loader_states(data)
    baseline = train_full(
        space, data, initial, base_config, out / "baseline", resume=o.resume, progress=o.progress
    )
    restore_loaders(data, fresh)  # the same batches whether the baseline was trained or loaded
    baseline_acc = evaluate(baseline, data.test, device=c.device).accuracy
    small, pruning, metrics = prune_network(
        baseline,
        space,
        data.train,
        data.val,
        data.test,
        c,
        baseline_acc=baseline_acc,
        spec=spec,
        budget=budget,
        out=out,
        resume=o.resume,
        progress=o.progress,
    )
    metrics = {"dataset": o.dataset, **metrics}
    save_model(small, pruning.spec, out)
    atomic_torch_save({u: s.clone() for u, s in pruning.scores.items()}, out / "scores.pt")
    _write_unit_summary(out / "summary.csv", pruning)
    write_json(out / "metrics.json", metrics)
    plot_widths(pruning.spec, out / "widths.png", title=f"{c.criterion} / {c.allocation}")
    return metrics


def _write_unit_summary(path: Path, pruning: Pruning) -> None:
    """Per unit: full and kept width, and the mean score of the kept and the removed channels."""
    space = pruning.spec.get_space()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["unit", "full_width", "width", "kept_score", "removed_score"])
    for u in space.units:
        width = pruning.spec.widths[u.name]
        ranked = pruning.scores[u.name][pruning.order[u.name]]
        kept, removed = ranked[:width], ranked[width:]
        writer.writerow(
            [
                u.name,
                u.max_width,
                width,
                f"{float(kept.mean()):.6g}",
                f"{float(removed.mean()):.6g}" if removed.numel() else "",
            ]
        )
    atomic_write_text(path, buf.getvalue())
