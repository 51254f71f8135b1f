"""Compound scaling (EfficientNet): depth, width and input resolution shrunk together to a MAC
budget. Modules: ``compound`` (the multipliers, :func:`~nas.scaling.compound.solve`) and ``run``
(:func:`run_scale`, what ``nas scale`` runs: the grid of multipliers judged on validation, the
chosen network trained)."""

from nas.scaling.compound import GRID, Multipliers, Scaled, depth_of, grid, solve
from nas.scaling.run import parse_multipliers, run_scale

__all__ = [
    "GRID",
    "Multipliers",
    "Scaled",
    "depth_of",
    "grid",
    "parse_multipliers",
    "run_scale",
    "solve",
]
