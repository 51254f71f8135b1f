"""nas.width_search.config: SearchConfig checks every option before anything runs."""

from __future__ import annotations

import math
from typing import Any

import pytest

from nas.errors import ConfigError
from nas.options import option_fields
from nas.width_search import MIN_TOLERANCE, SearchConfig

BAD_VALUES: list[tuple[dict[str, Any], str]] = [
    # wrong types, as a --config file or a Python caller can pass them
    ({"tau0": [1, 2]}, "--tau0"),
    ({"width_ratios": 0.5}, "--width-ratios"),
    ({"width_ratios": "0.5,1"}, "--width-ratios"),
    ({"width_ratios": ()}, "--width-ratios"),
    ({"width_ratios": (0.5, None)}, "--width-ratios"),
    ({"lr": None}, "--lr"),
    ({"lr": "0.1"}, "--lr"),
    ({"search_epochs": None}, "--search-epochs"),
    ({"search_epochs": 2.5}, "--search-epochs"),
    ({"warmup_epochs": True}, "--warmup-epochs"),
    ({"hard": 1}, "--hard"),
    ({"from_scratch": "no"}, "--from-scratch"),
    ({"strategy": None}, "--strategy"),
    ({"target_macs": None}, "--target-macs"),
    ({"rank_pool": 1.5}, "--rank-pool"),
    ({"seed": "0"}, "--seed"),
    # NaN, infinities and out-of-range values
    ({"budget_weight": math.nan}, "--budget-weight"),
    ({"tau0": math.inf}, "--tau0"),
    ({"lr": math.inf}, "--lr"),
    ({"arch_lr": 0.0}, "--arch-lr"),
    ({"finetune_lr": -1.0}, "--finetune-lr"),
    ({"arch_weight_decay": -1.0}, "--arch-weight-decay"),
    ({"weight_decay": -1e-4}, "--weight-decay"),
    ({"momentum": 1.0}, "--momentum"),
    ({"budget_band": 0.0}, "--budget-band"),
    ({"budget_band": 3.0}, "--budget-band"),
    ({"tolerance": MIN_TOLERANCE / 5}, "--tolerance"),
    ({"tolerance": 1.0}, "--tolerance"),
    ({"kd_alpha": 1.5}, "--kd-alpha"),
    ({"kd_temperature": 0.0}, "--kd-temperature"),
    ({"width_ratios": (0.5, 1.5)}, "--width-ratios"),
    ({"search_epochs": 0}, "--search-epochs"),
    ({"from_scratch": True, "finetune_epochs": 0}, "--from-scratch"),
    ({"select": "predictor", "rank_samples": 5}, "--rank-samples"),
    ({"select": "predictor", "rank_top_k": 20, "rank_pool": 10}, "--rank-top-k"),
]


@pytest.mark.parametrize(("changes", "flag"), BAD_VALUES, ids=[str(c) for c, _ in BAD_VALUES])
def test_bad_option_values_are_one_line_config_errors(changes: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag) as info:
        SearchConfig(**changes).validate()
    assert len(str(info.value).splitlines()) == 1


def test_every_option_is_type_checked() -> None:
    """A value of the wrong type in any field (a new field included) is a ConfigError that
    names its flag, never a TypeError later in the run."""
    for f in option_fields(SearchConfig):
        with pytest.raises(ConfigError, match=f.flag):
            wrong: dict[str, Any] = {f.name: object()}
            SearchConfig(**wrong).validate()


def test_valid_values_of_other_types_are_accepted() -> None:
    # ints where numbers are expected, a list of ratios, plain SGD, a numeric target
    ratios: Any = [0.5, 1]
    SearchConfig(lr=1, tau0=5, tau_min=1, width_ratios=ratios, momentum=0).validate()
    SearchConfig(target_macs=0.5, tolerance=MIN_TOLERANCE).validate()  # type: ignore[arg-type]
    SearchConfig(from_scratch=True, finetune_epochs=1).validate()
    SearchConfig(select="predictor", rank_samples=10, rank_pool=5, rank_top_k=5).validate()
    with pytest.raises(ConfigError, match="--rank-samples"):  # checked even when unused
        SearchConfig(rank_samples=0).validate()
