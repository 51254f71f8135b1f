"""Temperature schedules of the Gumbel-softmax relaxation (registry :data:`SCHEDULES`).

A schedule maps the progress ``t`` in [0, 1] of the search to a temperature between ``tau0``
(at 0) and ``tau_min`` (at 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from nas.registry import Registry

__all__ = ["SCHEDULES", "temperature"]

Schedule = Callable[[float, float, float], float]  # (t, tau0, tau_min) -> tau

SCHEDULES: Registry[Schedule] = Registry("temperature schedule")


@SCHEDULES.register("exponential")
def exponential(t: float, tau0: float, tau_min: float) -> float:
    """Geometric decay from tau0 to tau_min."""
    return tau0 * (tau_min / tau0) ** t


@SCHEDULES.register("linear")
def linear(t: float, tau0: float, tau_min: float) -> float:
    """Linear decay from tau0 to tau_min."""
    return tau0 + (tau_min - tau0) * t


@SCHEDULES.register("cosine")
def cosine(t: float, tau0: float, tau_min: float) -> float:
    """Half-cosine decay from tau0 to tau_min (TAS's code)."""
    return tau_min + 0.5 * (tau0 - tau_min) * (1.0 + math.cos(math.pi * t))


def temperature(step: int, total: int, tau0: float, tau_min: float, schedule: str) -> float:
    """Annealed Gumbel-softmax temperature at ``step`` of ``total`` (from tau0 to tau_min)."""
    t = min(1.0, step / max(1, total - 1))
    return SCHEDULES.get(schedule)(t, tau0, tau_min)
