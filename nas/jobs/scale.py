"""``nas scale --space SPACE --target-macs X``: the options parsed into one call of
:func:`nas.scaling.run_scale` (compound scaling of depth, width and input size to a MAC budget,
the multipliers grid-searched on validation, the chosen network trained), and its result
printed.

Writes ``arch.json``, ``model.pt``, ``model.pt2``, ``model.ts``, ``grid.csv``, ``metrics.json``,
``summary.csv`` and ``args.yaml`` (with ``--compare`` also ``uniform/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.data import DataOptions
from nas.engine import ThreadOptions, TrainConfig
from nas.engine.finetuning import MIN_TOLERANCE, parse_target
from nas.jobs.base import Command
from nas.jobs.format import human
from nas.options import MAX_EPOCHS, option
from nas.scaling import run_scale

__all__ = ["COMMAND", "ScaleOptions"]


@dataclass
class ScaleOptions(ThreadOptions, DataOptions):
    """What ``nas scale`` reads and writes."""

    group: ClassVar[str] = "scale"

    space: str = option(
        "resnet20",
        "the network to scale down: a CIFAR ResNet (its depth is the blocks per stage)",
        choices="search_spaces:SPACE_NAMES",
    )
    target_macs: str = option(
        "0.5",
        "MAC budget: a ratio of the full network (0.5) or absolute (20M)",
        parse=parse_target,
        what="a ratio like 0.5 or MACs like 20M",
    )
    tolerance: float = option(
        0.02, "final MACs within target x (1 +- tolerance)", ge=MIN_TOLERANCE, lt=1
    )
    multipliers: str | None = option(
        None,
        "ALPHA,BETA,GAMMA: scale with these (default: grid-search alpha * beta^2 * gamma^2 = 2 "
        "on the validation split)",
        metavar="A,B,G",
    )
    grid_epochs: int = option(
        5,
        "epochs each grid candidate trains before it is judged on validation",
        ge=1,
        le=MAX_EPOCHS,
    )
    compare: bool = option(
        False,
        "also train the uniform-width network of the same MACs (the space's depth and input "
        "size) the same way: uniform_acc in metrics.json",
    )
    out_dir: str = option("runs/scale", "output directory", flag="--out")
    overwrite: bool = option(False, "replace an earlier nas run in a non-empty --out directory")
    progress: bool = option(True, "no progress bars", flag="--quiet")


def _cli(options: ScaleOptions, config: TrainConfig) -> int:
    m = run_scale(
        options.space,
        options.data_options(),
        config,
        target_macs=options.target_macs,
        tolerance=options.tolerance,
        multipliers=options.multipliers,
        grid_epochs=options.grid_epochs,
        out_dir=options.out_dir,
        compare=options.compare,
        overwrite=options.overwrite,
        progress=options.progress,
        threads=options.threads,
    )
    print(
        f"{m['space']} at {m['input_side']}x{m['input_side']}, width x{m['width_multiplier']:.2f} "
        f"(alpha {m['alpha']:g}, beta {m['beta']:g}, gamma {m['gamma']:g}, phi {m['phi']:g}; "
        f"{m['candidates']} candidates): {m['test_acc']:.2f} % at {human(m['macs'])} MACs "
        f"({m['macs_ratio']:.1%})"
        + (f"; uniform width: {m['uniform_acc']:.2f} %" if "uniform_acc" in m else "")
    )
    print(f"-> {options.out_dir}")
    return 0


COMMAND = Command(
    options=(ScaleOptions, TrainConfig),
    run=_cli,
    description="Compound scaling (EfficientNet): the depth, width and input resolution of a "
    "CIFAR ResNet shrunk together to a MAC budget. Each (alpha, beta, gamma) of a grid with "
    "alpha * beta^2 * gamma^2 = 2 is solved to the target and trained briefly, the best on "
    "validation is trained from scratch and saved (the images resized to its input size).",
    config_file=True,
)
