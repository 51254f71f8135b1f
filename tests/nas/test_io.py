"""nas.io: JSON output of non-finite numbers."""

from __future__ import annotations

import math

import pytest

from nas.io import json_safe

pytestmark = pytest.mark.usefixtures("one_thread")


def test_json_safe_replaces_non_finite_numbers() -> None:
    data = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": 2, "e": "x"}
    assert json_safe(data) == {"a": None, "b": [1.0, None, {"c": None}], "d": 2, "e": "x"}
