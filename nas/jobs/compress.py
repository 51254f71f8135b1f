"""``nas compress RUN_DIR --clusters K``: the options parsed into one call of
:func:`nas.compression.run_compress` (a finished run's network fine-tuned with DKM weight
clustering and snapped to ``K`` centroids per layer), and its result printed.

Writes ``arch.json``, ``clustered.pt``, ``model.pt``, ``model.pt2``, ``model.ts``,
``metrics.json``, ``args.yaml`` and ``finetune/summary.csv`` (with ``--compare`` also
``uncompressed/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.compression import run_compress
from nas.data import DataOptions
from nas.engine import Distillation, ThreadOptions, TrainConfig
from nas.jobs.base import Command
from nas.jobs.format import human
from nas.options import option

__all__ = ["COMMAND", "CompressOptions"]


@dataclass
class CompressOptions(ThreadOptions, DataOptions):
    """What ``nas compress`` reads and writes."""

    group: ClassVar[str] = "compress"

    run_dir: str = option("", "a finished run's directory (arch.json + model.pt)", positional=True)
    clusters: int = option(
        16,
        "centroids per layer (K): every conv and linear weight becomes one of K values "
        "(4, 16, 256: 2, 4, 8 bits per weight)",
        ge=2,
        le=65536,
    )
    temperature: float = option(
        0.5,
        "softness of the clustering during fine-tuning, in units of each layer's mean squared "
        "distance to its nearest centroid at the start",
        gt=0,
    )
    compare: bool = option(
        False,
        "also fine-tune the network the same way without clustering (the reference: "
        "uncompressed_acc in metrics.json)",
    )
    out_dir: str = option("runs/compress", "output directory", flag="--out")
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")
    progress: bool = option(True, "no progress bars", flag="--quiet")


def _cli(options: CompressOptions, config: TrainConfig, distill: Distillation) -> int:
    m = run_compress(
        options.run_dir,
        options.data_options(),
        config,
        distill,
        clusters=options.clusters,
        temperature=options.temperature,
        out_dir=options.out_dir,
        compare=options.compare,
        overwrite=options.overwrite,
        progress=options.progress,
        threads=options.threads,
    )
    line = (
        f"{options.clusters} clusters per layer: {m['source_acc']:.2f} % -> "
        f"{m['clustered_acc']:.2f} % at {m['bits_per_weight']:.2f} bits per weight; "
        f"{human(m['model_bytes'])}B -> {human(m['file_bytes'])}B ({m['compression']:.1f}x)"
    )
    if "uncompressed_acc" in m:
        line += f"; without clustering, fine-tuned the same way: {m['uncompressed_acc']:.2f} %"
    print(line)
    print(f"-> {options.out_dir}")
    return 0


COMMAND = Command(
    options=(CompressOptions, TrainConfig, Distillation),
    run=_cli,
    description="Fine-tunes a finished run's network with differentiable k-means clustering of "
    "every conv and linear weight (DKM), distilling from the network as it was, then snaps "
    "each weight to its layer's nearest centroid: saved as centroids and bit-packed indices "
    "(clustered.pt, loaded by nas.compression.load_clustered) beside the usual files.",
    defaults={"epochs": 10, "lr": 0.01},
    config_file=True,
    required=frozenset({"run_dir"}),
)
