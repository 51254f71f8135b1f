"""A clustering into a run directory as a library call: :func:`run_compress` (what ``nas
compress`` runs).

The network of a finished run (``arch.json`` + ``model.pt``: a search's, a pruning's, a
training's, an extraction's) is fine-tuned with every conv and linear weight soft-clustered
(:mod:`nas.compression.dkm`), distilling from the network as it was, then snapped to ``K``
centroids per layer. Writes ``arch.json`` and ``clustered.pt`` (centroids and packed indices,
:mod:`nas.compression.storage`), ``model.pt`` / ``model.pt2`` / ``model.ts`` (the snapped network
in the usual files, for every other tool), ``metrics.json`` (accuracy before and after, bits per
weight, the files' sizes), ``args.yaml`` and the fine-tuning's ``finetune/summary.csv``; with
``compare``, the same network fine-tuned the same way without clustering (``uncompressed/``):
the reference that tells what the clustering costs, not what the extra epochs give.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn

from nas.compression.dkm import attach, snap
from nas.compression.storage import index_bits, save_clustered, size_report
from nas.data import DataOptions
from nas.engine import (
    Distillation,
    TrainConfig,
    evaluate,
    loader_state,
    restore_loader,
    seed_everything,
    train_model,
)
from nas.extraction import load_model, save_model
from nas.io import write_json, write_yaml
from nas.options import record
from nas.rundir import prepare_out_dir, run_output
from nas.runs import (
    check_data_fits,
    environment,
    resolve_threads,
    static_run_dir,
    torch_threads,
)
from search_spaces import WidthSpec

__all__ = ["check_compressible", "run_compress"]


def check_compressible(run_dir: str | Path) -> Path:
    """``run_dir`` if it holds a static network (``arch.json`` + ``model.pt``); one line
    otherwise."""
    return static_run_dir(
        run_dir,
        "holds a per-input (conditional) network; cluster a static one (nas search --static)",
    )


def run_compress(
    run_dir: str | Path,
    data: DataOptions,
    config: TrainConfig,
    distill: Distillation,
    *,
    clusters: int,
    temperature: float,
    out_dir: str | Path,
    compare: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """``nas compress``: the network of ``run_dir`` fine-tuned with ``clusters`` soft centroids
    per layer and snapped to them (see the module); returns ``metrics.json``'s contents."""
    source = check_compressible(run_dir)
    index_bits(clusters)  # refused before any work above 65,536
    config.validate()
    distill.validate()
    inputs: list[str | Path | None] = [source, *data.input_paths()]
    out = prepare_out_dir(out_dir, overwrite=overwrite, inputs=inputs)
    spec = WidthSpec.load(source / "arch.json")
    network = load_model(source)
    bundle = data.load(config.seed)
    check_data_fits(spec.get_space(), bundle)
    count = resolve_threads(threads)
    with run_output(out, overwrite=overwrite, inputs=inputs), torch_threads(count):
        write_yaml(
            out / "args.yaml",
            {
                "command": "compress",
                "run_dir": str(run_dir),
                "clusters": clusters,
                "temperature": temperature,
                "compare": compare,
                **record(data),
                **record(config),
                **record(distill),
                "threads": count,
                "data": bundle.describe(),
                "environment": environment(),
            },
        )
        device = config.device
        teacher = copy.deepcopy(network).eval() if distill.kd_alpha > 0 else None
        before = evaluate(network, bundle.test, device=device).accuracy
        begin = loader_state(bundle.train)
        student = copy.deepcopy(network)
        seed_everything(config.seed)
        attach(student, clusters, temperature)
        _finetune(student, teacher, bundle, config, distill, out / "finetune", progress, "cluster")
        soft_val = evaluate(student, bundle.val, device=device).accuracy if bundle.val else None
        centroids = snap(student, clusters)
        path = save_clustered(student, centroids, spec, out)
        save_model(student, spec, out)
        metrics: dict[str, Any] = {
            "run_dir": str(run_dir),
            "clusters": clusters,
            **size_report(student, centroids, path),
            "model_bytes": (source / "model.pt").stat().st_size,
            "source_acc": before,
            "clustered_acc": evaluate(student, bundle.test, device=device).accuracy,
            "clustered_val_acc": evaluate(student, bundle.val, device=device).accuracy
            if bundle.val
            else None,
            "soft_val_acc": soft_val,
            "macs": spec.macs(),
            "macs_ratio": spec.macs_ratio(),
            "dataset": data.dataset,
        }
        metrics["compression"] = metrics["model_bytes"] / metrics["file_bytes"]
        if compare:
            restore_loader(bundle.train, begin)
            reference = copy.deepcopy(network)
            seed_everything(config.seed)
            _finetune(
                reference,
                teacher,
                bundle,
                config,
                distill,
                out / "uncompressed",
                progress,
                "reference",
            )
            metrics |= {
                "reference": "the same network fine-tuned the same way, without clustering",
                "uncompressed_acc": evaluate(reference, bundle.test, device=device).accuracy,
                "uncompressed_val_acc": evaluate(reference, bundle.val, device=device).accuracy
                if bundle.val
                else None,
            }
        write_json(out / "metrics.json", metrics)
    return metrics


def _finetune(
    model: nn.Module,
    teacher: nn.Module | None,
    bundle: Any,
    config: TrainConfig,
    distill: Distillation,
    out: Path,
    progress: bool,
    desc: str,
) -> None:
    train_model(
        model,
        bundle.train,
        config=config,
        val_loader=bundle.val,
        teacher=teacher,
        distill=distill,
        out_dir=out,
        progress=progress,
        desc=desc,
    )
