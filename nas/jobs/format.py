"""How numbers are printed by the commands."""

from __future__ import annotations

__all__ = ["human"]


def human(value: float) -> str:
    """``2516608`` -> ``2.52 M``: three significant figures with a K/M/G suffix."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"
