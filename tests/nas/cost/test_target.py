"""nas.cost.target: parsing --target-macs."""

from __future__ import annotations

import pytest

from nas.cost import parse_target_macs
from nas.errors import ConfigError

FULL = 4_100_000_000  # about a ResNet-50 at 224 px


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5", 0.5 * FULL),
        (0.5, 0.5 * FULL),
        ("1", FULL),
        (" 0.25 ", 0.25 * FULL),
        ("60M", 60e6),
        ("60m", 60e6),
        ("1.2G", 1.2e9),
        ("500k", 500e3),
        ("500K", 500e3),
        ("4.1G", FULL),
    ],
)
def test_parse_target_macs(text: str | float, expected: float) -> None:
    assert parse_target_macs(text, FULL) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "abc", "", "10G", "0M", "0.5X", "5e9k"])
def test_parse_target_macs_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="target-macs"):
        parse_target_macs(text, FULL)
