"""nas.scaling.compound: compound multipliers solved to a MAC target."""

from __future__ import annotations

import math

import pytest

import search_spaces
from nas.errors import ConfigError
from nas.scaling import GRID, Multipliers, depth_of, solve
from search_spaces.cifar_resnet import cifar_name


def test_the_grid_keeps_alpha_beta2_gamma2_at_two_with_every_multiplier_at_least_one() -> None:
    assert len(GRID) >= 6
    for m in GRID:
        assert abs(m.flops_base - 2.0) < 1e-3 and min(m.alpha, m.beta, m.gamma) >= 1.0


@pytest.mark.parametrize("target", [0.5, 0.25, 0.12])
@pytest.mark.parametrize("name", ["resnet20_b", "resnet56"])
def test_every_candidate_meets_the_mac_target_within_two_percent(name: str, target: float) -> None:
    base = search_spaces.create(name)
    solved = 0
    for m in GRID:
        try:
            scaled = solve(base, m, target * base.macs(), 0.02)
        except ConfigError as exc:  # the steps of depth, side and uniform width skip the band
            assert "lands within 2%" in str(exc)
            continue
        solved += 1
        assert abs(scaled.spec.macs() / (target * base.macs()) - 1) <= 0.02, m
        space = scaled.spec.get_space()
        n0, _ = depth_of(base)
        blocks = max(1, round(n0 * m.alpha**scaled.phi))  # depth follows alpha^phi
        assert space.name == cifar_name(6 * blocks + 2, "B" if name.endswith("_b") else "A")
        side = max(8, round(32 * m.gamma**scaled.phi))  # resolution follows gamma^phi
        assert space.input_size == (side, side)
    assert solved >= len(GRID) - 1


def test_pure_width_scaling_is_the_uniform_width_of_the_budget() -> None:
    base = search_spaces.create("resnet20_b")
    scaled = solve(base, Multipliers(1.0, math.sqrt(2), 1.0), 0.25 * base.macs(), 0.02)
    assert scaled.spec.get_space() is base
    assert dict(scaled.spec.widths) == base.uniform_widths_for_macs(0.25)


def test_a_space_whose_depth_cannot_change_and_a_target_above_the_network_are_refused() -> None:
    tv = search_spaces.create("resnet18", num_classes=10, input_size=(32, 32))
    with pytest.raises(ConfigError, match="the depth of resnet18 cannot change"):
        depth_of(tv)
    base = search_spaces.create("resnet20")
    with pytest.raises(ConfigError, match="nas scale shrinks a network"):
        solve(base, GRID[0], 2 * base.macs(), 0.02)
