"""nas.sweep.config: SweepConfig's suggestions."""

from __future__ import annotations

import optuna

from nas.sweep import SweepConfig, make_sampler
from tests.nas.sweep.conftest import TINY


def test_suggest_draws_budgets_from_the_list() -> None:
    config = SweepConfig(budgets=(0.25, 0.5), tune=())
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(config, 0)
    )
    for _ in range(6):
        trial = study.ask()
        search = config.suggest(trial, TINY)
        assert set(trial.params) == {"target_macs"}
        assert float(search.target_macs) in (0.25, 0.5)
        assert search.budget_weight == TINY.budget_weight  # not tuned: unchanged
