"""A search under every registered cost model: one interface from the budget to the delivery."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from nas.cost import COST_MODELS
from nas.data import DataBundle, TensorLoader
from nas.errors import ConfigError
from nas.width_search import search_budget, search_widths
from nas.width_search.setup import cost_model
from search_spaces import SearchSpace
from tests.conftest import synthetic_latency_table
from tests.nas.width_search.conftest import tiny

pytestmark = pytest.mark.usefixtures("one_thread")


def _table(space: SearchSpace, tmp_path: Path) -> str:
    path = tmp_path / "table.json"
    synthetic_latency_table(space).save(path)
    return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("cost", COST_MODELS.names())
def test_a_search_meets_its_budget_under_every_cost(
    cost: str,
    tmp_path: Path,
    digits: DataBundle,
    val: TensorLoader,
    trained: tuple[SearchSpace, nn.Module],
) -> None:
    space, model = trained
    options: dict[str, object] = {"cost": cost, "target_macs": "0.5", "arch_lr": 0.3}
    if cost == "latency":
        options |= {"latency_table": _table(space, tmp_path), "target_latency": "0.5"}
    config = tiny(search_epochs=3, **options)
    outcome = search_widths(model, space, digits.train, val, config=config, progress=False)
    assert outcome.cost.name == cost
    target = outcome.budget.target
    assert target == pytest.approx(0.5 * outcome.cost.full())
    assert abs(outcome.cost.exact(dict(outcome.spec.widths)) / target - 1) <= config.tolerance


def test_latency_options_are_checked_before_any_work(
    tmp_path: Path, trained: tuple[SearchSpace, nn.Module]
) -> None:
    space, _ = trained
    table = _table(space, tmp_path)
    bad: list[tuple[dict[str, object], str]] = [
        ({"cost": "latency", "target_latency": "0.5"}, "needs --latency-table"),
        ({"target_latency": "0.5"}, "needs --cost latency"),
        (
            {
                "cost": "latency",
                "latency_table": table,
                "target_latency": "0.5",
                "strategy": "channel-gumbel",
            },
            "own MAC activation loss",
        ),
    ]
    for changes, message in bad:
        with pytest.raises(ConfigError, match=message):
            tiny(**changes).validate()
    config = tiny(cost="latency", latency_table=table, target_latency="0.5").validate()
    with pytest.raises(ConfigError, match="measured with threads"):
        cost_model(config, space, threads=999)
    low = tiny(cost="latency", latency_table=table, target_latency="0.0001")
    with pytest.raises(ConfigError, match="below the smallest network"):
        search_budget(low, space)
