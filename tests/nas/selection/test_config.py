"""nas.selection.config: RankConfig refuses bad values and names the command's flags."""

from __future__ import annotations

import math

import pytest

from nas.errors import ConfigError
from nas.selection import RankConfig
from nas.width_search import SearchConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bad_rank_config_is_refused() -> None:
    for bad in (
        RankConfig(samples=5),
        RankConfig(top_k=0),
        RankConfig(pool=3, top_k=5),
        RankConfig(sampling="nope"),
        RankConfig(band=1.5),
        RankConfig(holdout=1),
        RankConfig(holdout=2),
        RankConfig(holdout=-1),
        RankConfig(holdout_lr=0.0),
        RankConfig(holdout_lr=math.nan),
        RankConfig(topk_epochs=-1),
        RankConfig(predictor_layers=9),
    ):
        with pytest.raises(ConfigError):
            bad.validate()
    for good in (RankConfig(holdout=0), RankConfig(holdout=3), RankConfig(top_k=3, pool=3)):
        good.validate()


def test_rank_config_messages_name_the_flags_of_the_command() -> None:
    with pytest.raises(ConfigError, match=r"^--samples must be >= 10, got 5"):
        RankConfig(samples=5).validate()
    with pytest.raises(ConfigError, match=r"^--rank-samples must be >= 10, got 5"):
        SearchConfig(select="predictor", rank_samples=5).validate()
    with pytest.raises(ConfigError, match=r"^--rank-top-k .* --rank-pool 3, got 5"):
        SearchConfig(select="predictor", rank_pool=3, rank_top_k=5).validate()
    with pytest.raises(ConfigError, match=r"^--holdout must be 0 \(off\) or at least 3"):
        RankConfig(holdout=2).validate()
    with pytest.raises(ConfigError, match=r"^--band must be in \(0, 1\), got 2"):
        RankConfig(band=2.0).validate()
