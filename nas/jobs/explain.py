"""``nas explain RUN_DIR``: the options parsed into one call of
:func:`nas.interpretation.run_explain` (per-class channel importances of a layer learned by
perturbation, class maps over images), and its result printed.

Writes ``importance.csv``, ``maps/class_K.png``, ``metrics.json`` and ``args.yaml`` into
``--out`` (default ``RUN_DIR/explain``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.data import DataOptions
from nas.engine import ThreadOptions
from nas.interpretation import run_explain
from nas.jobs.base import Command
from nas.options import option

__all__ = ["COMMAND", "ExplainOptions"]


@dataclass
class ExplainOptions(ThreadOptions, DataOptions):
    """What ``nas explain`` reads and writes."""

    group: ClassVar[str] = "explain"

    run_dir: str = option("", "a finished run's directory (arch.json + model.pt)", positional=True)
    layer: str | None = option(
        None, "the layer whose channels are explained (default: the last stage's output)"
    )
    images: int = option(512, "training images the importances are learned on", ge=1)
    per_class: int = option(6, "test images drawn with their maps per class", ge=1, le=64)
    sparsity: float = option(
        0.5,
        "weight of the importances' mean beside the cross-entropy: higher keeps fewer channels "
        "per class",
        ge=0,
    )
    steps: int = option(300, "optimisation steps of the importances (Adam)", ge=1)
    seed: int = option(0, "seed of the data order and of the random channels compared")
    out_dir: str | None = option(None, "output directory (default: RUN_DIR/explain)", flag="--out")
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")


def _cli(options: ExplainOptions) -> int:
    m = run_explain(
        options.run_dir,
        options.data_options(),
        layer=options.layer,
        images=options.images,
        per_class=options.per_class,
        sparsity=options.sparsity,
        steps=options.steps,
        seed=options.seed,
        out_dir=options.out_dir,
        overwrite=options.overwrite,
        threads=options.threads,
    )
    print(
        f"{m['layer']}: {m['channels_above_half']:.1f} of {m['channels']} channels matter per "
        f"class on average; test accuracy {m['test_acc']:.2f} %, without the predicted class's "
        f"top {m['removed_channels']}: {m['without_top_acc']:.2f} % (without "
        f"{m['removed_channels']} random ones: {m['without_random_acc']:.2f} %)"
    )
    print(f"-> {options.out_dir or f'{options.run_dir}/explain'}")
    return 0


COMMAND = Command(
    options=(ExplainOptions,),
    run=_cli,
    description="Learns which channels of a layer each class needs (importances in [0, 1] by "
    "perturbation, the network's weights untouched; CHIP's channel-wise interpretation) and "
    "draws each class's maps over test images.",
    required=frozenset({"run_dir"}),
)
