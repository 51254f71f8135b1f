"""nas.cost.latency / timing: interpolation, tables on files, refusals, the latency cost in the
projection. Synthetic tables throughout: timing lives in experiments/benchmarks/."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import search_spaces
from nas.cost import LatencyCost, LatencyTable, parse_target_latency, project_most_probable
from nas.cost.latency import check_environment, environment, interpolate, width_grid
from nas.cost.timing import fit_network_cost, layer_configs
from nas.errors import ConfigError
from tests.conftest import small_space, synthetic_latency_table
from tests.nas.conftest import choices_of


def test_interpolation_is_exact_at_grid_points_and_monotone_between_them() -> None:
    grid_in = torch.tensor([1.0, 4.0, 8.0])
    grid_out = torch.tensor([1.0, 8.0, 16.0, 20.0])
    g = torch.Generator().manual_seed(0)
    # increasing in both widths, uneven steps
    ms = torch.rand(3, 4, generator=g, dtype=torch.float64).cumsum(0).cumsum(1) + 0.1
    a, b = torch.meshgrid(grid_in, grid_out, indexing="ij")
    assert torch.equal(interpolate(grid_in, grid_out, ms, a, b), ms)
    # between neighbours: linear in each width, so monotone and within the corner values
    for c_out in (1.0, 5.0, 16.0, 19.5):
        xs = torch.linspace(1, 8, 57, dtype=torch.float64)
        ys = interpolate(grid_in, grid_out, ms, xs, torch.tensor(c_out))
        assert bool((ys.diff() >= 0).all())
    mid = interpolate(grid_in, grid_out, ms, torch.tensor(6.0), torch.tensor(12.0))
    assert float(mid) == pytest.approx(float(ms[1:, 1:3].mean()))


def test_the_width_grid_holds_one_every_step_and_the_maximum() -> None:
    assert width_grid(16, 4) == [1, 4, 8, 12, 16]
    assert width_grid(18, 8) == [1, 8, 16, 18]


def test_the_width_grid_brackets_every_kernel_block_where_the_latency_steps_up() -> None:
    steps = [1, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64]
    assert width_grid(64, 4, 16) == sorted([*steps, 17, 33, 49])
    assert width_grid(256, 16, 16)[:6] == [1, 16, 17, 32, 33, 48]
    assert width_grid(2048, 128, 16) == width_grid(2048, 128)  # coarser than a block: no extra


def test_expected_latency_grows_with_every_width() -> None:
    """The budget's gradient has the right sign: more channels, more predicted time."""
    space = small_space("resnet20_b")
    cost = LatencyCost(space, table=synthetic_latency_table(space))
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        widths = {
            u.name: (1 + torch.rand((), generator=g) * (u.max_width - 1)).requires_grad_()
            for u in space.units
        }
        cost.expected(widths).backward()
        assert all(float(w.grad) > 0 for w in widths.values())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["resnet20", "resnet20_b", "resnet56_b"])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.8])
def test_projection_lands_in_the_band_of_a_latency(name: str, ratio: float) -> None:
    space = search_spaces.create(name)
    cost = LatencyCost(space, table=synthetic_latency_table(space))
    choices = choices_of(space)
    g = torch.Generator().manual_seed(1)
    log_probs = {
        u: torch.log_softmax(torch.randn(len(c), generator=g), 0) for u, c in choices.items()
    }
    target = ratio * cost.full()
    widths = project_most_probable(cost, space.full_widths(), choices, log_probs, target, 0.02)
    assert abs(cost.exact(widths) / target - 1) <= 0.02


def test_a_table_round_trips_and_is_refused_elsewhere(tmp_path: Path) -> None:
    space = small_space("resnet20")
    table = synthetic_latency_table(space)
    path = tmp_path / "table.json"
    table.save(path)
    loaded = LatencyTable.load(path)
    widths = {u.name: max(1, u.max_width // 2) for u in space.units}
    assert LatencyCost(space, table=loaded).exact(widths) == pytest.approx(
        LatencyCost(space, table=table).exact(widths)
    )
    here = environment("cpu", torch.get_num_threads(), 16)
    check_environment(loaded, here, "t")  # the same configuration: accepted
    for key, value in (("threads", here["threads"] + 1), ("batch", 1), ("device", "cuda")):
        with pytest.raises(ConfigError, match=f"measured with {key}"):
            check_environment(loaded, {**here, key: value}, "t")
    with pytest.raises(ConfigError, match="was measured for resnet20"):
        LatencyCost(small_space("resnet20_b"), table=loaded)
    with pytest.raises(ConfigError, match="unfinished"):
        LatencyCost(space, table=replace(loaded, complete=False))


@pytest.mark.parametrize(
    ("text", "message"),
    [("{", "not a latency table"), ('{"format": "other"}', "is not a channel-nas"), ("", "not a")],
)
def test_a_corrupt_table_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "table.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        LatencyTable.load(path)


def test_a_damaged_table_is_one_line(tmp_path: Path) -> None:
    space = small_space("resnet20")
    path = tmp_path / "table.json"
    synthetic_latency_table(space).save(path)
    data = json.loads(path.read_text())
    del data["entries"]
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="damaged"):
        LatencyTable.load(path)


def test_layer_configurations_cover_every_conv_and_linear_once() -> None:
    space = search_spaces.create("resnet56_b")
    entries, layers = layer_configs(space)
    timed = {la.name for la in space.layers if la.kind in ("conv", "linear")}
    assert set(layers) == timed
    assert set(layers.values()) == set(entries)
    assert len(entries) < len(timed)  # blocks of a stage share their configuration
    # a stride-2 entry keeps its input resolution
    assert any(e.stride == 2 and e.in_hw == (32, 32) for e in entries.values())


def test_the_network_fit_recovers_a_fixed_cost_and_scale() -> None:
    sums = [1.0, 2.0, 3.5, 5.0]
    fixed, scale = fit_network_cost(sums, [0.4 + 1.3 * s for s in sums])
    assert fixed == pytest.approx(0.4) and scale == pytest.approx(1.3)
    fixed, scale = fit_network_cost(sums, [1.3 * s - 0.2 for s in sums])
    assert fixed == 0.0 and scale > 0  # a negative fixed cost is not physical


def test_latency_targets_parse_as_ratios_or_milliseconds() -> None:
    assert parse_target_latency("0.5", 8.0) == 4.0
    assert parse_target_latency("3ms", 8.0) == 3.0
    assert parse_target_latency("2.5 ms", 8.0) == 2.5
    for bad in ("1.5", "9ms", "fast", "0"):
        with pytest.raises(ConfigError, match="target-latency"):
            parse_target_latency(bad, 8.0)
