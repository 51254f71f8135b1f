"""nas.width_search.finetune: what --compare needs before the search starts."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

import search_spaces
from nas.cost import COST_MODELS
from nas.errors import ConfigError
from nas.width_search import check_compare, search_budget
from nas.width_search.setup import cost_model
from tests.conftest import synthetic_latency_table
from tests.nas.width_search.conftest import tiny

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("cost", COST_MODELS.names())
def test_compare_is_refused_before_any_work_where_no_uniform_width_meets_the_target(
    cost: str, tmp_path: Path
) -> None:
    """Between two neighbouring uniform widths, farther than the tolerance from both, there is
    no uniform twin: refused with one message; at a uniform width's own cost it is found; and
    without --compare nothing is checked."""
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    options: dict[str, object] = {"cost": cost, "compare": True, "tolerance": 0.005}
    key = "target_macs"
    if cost == "latency":
        table = tmp_path / "table.json"
        synthetic_latency_table(space).save(table)
        options |= {"latency_table": str(table)}
        key = "target_latency"
    model = cost_model(tiny(**options), space)
    full = model.full()
    # uniform widths between 40 % and full: above the smallest network the choices allow
    prices = sorted({model.exact(space.uniform_widths_for_macs(i / 100)) for i in range(40, 101)})
    low, high = max(itertools.pairwise(prices), key=lambda ab: ab[1] / ab[0])
    assert high / low > 1.02  # a gap wider than the band on either side of its middle

    between = tiny(**options, **{key: f"{(low + high) / 2 / full:.8g}"})
    with pytest.raises(ConfigError, match="--compare: no uniform width"):
        check_compare(search_budget(between, space, cost=model), between)
    unchecked = replace(between, compare=False)
    check_compare(search_budget(unchecked, space, cost=model), unchecked)
    own = tiny(**options, **{key: f"{high / full:.8g}"})
    check_compare(search_budget(own, space), own)  # its own cost model
