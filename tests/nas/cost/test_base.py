"""nas.cost.base: every registered cost model prices widths three ways, consistently."""

from __future__ import annotations

import pytest
import torch

from nas.cost import COST_MODELS, CostModel, create_cost_model
from search_spaces import SearchSpace
from tests.conftest import random_widths, small_space, synthetic_latency_table


def cost_model(name: str, space: SearchSpace) -> CostModel:
    """The registered cost model ``name`` (a latency model reads a synthetic table)."""
    options = {"table": synthetic_latency_table(space)} if name == "latency" else {}
    return create_cost_model(name, space, **options)


@pytest.mark.parametrize("name", COST_MODELS.names())
@pytest.mark.parametrize("space_name", ["resnet20", "resnet20_b", "resnet50"])
def test_every_cost_model_is_consistent(name: str, space_name: str) -> None:
    space = small_space(space_name)
    cost = cost_model(name, space)
    assert cost.full() == pytest.approx(cost.exact(space.full_widths()))
    rows = [random_widths(space, seed) for seed in range(5)]
    exact = [cost.exact(w) for w in rows]
    assert all(0 < e <= cost.full() for e in exact)
    table = torch.tensor([[w[u.name] for u in space.units] for w in rows])
    assert cost.batched(table).tolist() == pytest.approx(exact)
    # the per-layer terms (what the projection's dynamic program sums) give the same totals
    assert sum(
        float(
            t.fn(
                torch.tensor(float(rows[0][t.in_unit] if t.in_unit else t.fixed_in)),
                torch.tensor(float(rows[0][t.out_unit] if t.out_unit else t.fixed_out)),
            )
        )
        for t in cost.terms()
    ) == pytest.approx(exact[0])
    # expected cost: exact at integer widths, differentiable, growing with every width
    widths = {u: torch.tensor(float(v), requires_grad=True) for u, v in rows[0].items()}
    expected = cost.expected(widths)
    assert float(expected.detach()) == pytest.approx(exact[0])
    expected.backward()
    assert all(w.grad is not None and float(w.grad) > 0 for w in widths.values())
