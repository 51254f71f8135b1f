"""nas.gates.schedules: temperature annealing."""

from __future__ import annotations

import itertools
import math

import pytest

from nas.errors import ConfigError
from nas.gates import SCHEDULES, temperature
from nas.width_search import SearchConfig


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("total", [2, 10, 37])
def test_temperature_anneals_from_tau0_to_tau_min(schedule: str, total: int) -> None:
    tau0, tau_min = 5.0, 0.1
    taus = [temperature(step, total, tau0, tau_min, schedule) for step in range(total)]
    assert taus[0] == pytest.approx(tau0)
    assert taus[-1] == pytest.approx(tau_min)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(taus))
    assert all(tau_min - 1e-12 <= t <= tau0 + 1e-12 for t in taus)
    # past the end it stays at the final temperature
    assert temperature(total + 5, total, tau0, tau_min, schedule) == pytest.approx(tau_min)


def test_temperature_schedules_differ_in_between() -> None:
    mid = {s: temperature(5, 11, 4.0, 0.25, s) for s in SCHEDULES}
    assert mid["linear"] == pytest.approx((4.0 + 0.25) / 2)
    assert mid["cosine"] == pytest.approx((4.0 + 0.25) / 2)
    assert mid["exponential"] == pytest.approx(math.sqrt(4.0 * 0.25))


def test_unknown_schedule_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        temperature(0, 10, 5.0, 0.1, "nope")
    with pytest.raises(ConfigError, match="nope"):
        SearchConfig(schedule="nope").validate()
