"""A MAC target as the user writes it: a ratio of the full network or absolute MACs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nas.errors import ConfigError

__all__ = ["TargetBand", "parse_target_latency", "parse_target_macs"]


@dataclass(frozen=True)
class TargetBand:
    """A target and its tolerance: what lands in ``[target (1 - tolerance), target (1 +
    tolerance)]`` meets it (in the target's unit: MACs, or milliseconds)."""

    target: float
    tolerance: float

    @property
    def low(self) -> float:
        return self.target * (1 - self.tolerance)

    @property
    def high(self) -> float:
        return self.target * (1 + self.tolerance)


_SUFFIX = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}


def parse_target_macs(text: str | float, full_macs: int) -> float:
    """A MAC target as a ratio of the full network (``0.5``) or absolute (``60M``, ``1.2G``).

    Returns the target in MACs. A ratio must be in (0, 1]; an absolute value must be positive
    and at most the full network's MACs.
    """
    s = str(text).strip()
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([kKmMgG]?)", s)
    if m is None:
        raise ConfigError(f"bad --target-macs {s!r}: use a ratio like 0.5 or MACs like 60M")
    value, suffix = float(m.group(1)), m.group(2).upper()
    if not suffix:
        if not 0 < value <= 1:
            raise ConfigError(
                f"--target-macs ratio must be in (0, 1], got {s} "
                "(write absolute MACs with a suffix, e.g. 60M)"
            )
        return value * full_macs
    macs = value * _SUFFIX[suffix]
    if not 0 < macs <= full_macs:
        raise ConfigError(f"--target-macs {s} is not in (0, {full_macs:,}] (the full network)")
    return macs


def parse_target_latency(text: str | float, full_ms: float) -> float:
    """A latency target as a ratio of the full network's latency (``0.5``) or in milliseconds
    (``4ms``, ``4.5 ms``); returns milliseconds, in (0, full]."""
    s = str(text).strip()
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms)?", s, flags=re.IGNORECASE)
    if m is None:
        raise ConfigError(f"bad --target-latency {s!r}: use a ratio like 0.5 or a time like 4ms")
    value = float(m.group(1))
    if m.group(2) is None:
        if not 0 < value <= 1:
            raise ConfigError(
                f"--target-latency ratio must be in (0, 1], got {s} (write milliseconds as 4ms)"
            )
        return value * full_ms
    if not 0 < value <= full_ms:
        raise ConfigError(
            f"--target-latency {s} is not in (0, {full_ms:.4g} ms] (the full network, predicted)"
        )
    return value
