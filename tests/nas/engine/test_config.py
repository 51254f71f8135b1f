"""nas.engine.config: TrainConfig and Distillation refuse bad values in one line."""

from __future__ import annotations

from typing import Any

import pytest

from nas.engine import Distillation, TrainConfig, train_model
from nas.errors import ConfigError
from tests.nas.engine.conftest import loaders, small_cnn, states_equal


def test_bad_distillation_raises_one_line() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kd_alpha": 1.5}, r"--kd-alpha must be in \[0, 1\], got 1.5"),
        ({"kd_temperature": 0.0}, "--kd-temperature must be > 0, got 0"),
        ({"kd_features": "gram"}, "--kd-features"),
        ({"kd_feature_weight": -1.0}, "--kd-feature-weight must be >= 0"),
    ]
    for changes, message in cases:
        with pytest.raises(ConfigError, match=message):
            Distillation(**changes).validate()
        with pytest.raises(ConfigError, match=message):
            train_model(
                small_cnn(),
                loaders()[0],
                config=TrainConfig(epochs=1),
                teacher=small_cnn(),
                distill=Distillation(**changes),
                progress=False,
            )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 0}, r"--epochs must be in \[1, 100000\], got 0"),
        ({"lr": 0.0}, "--lr must be > 0"),
        ({"lr": float("nan")}, "--lr must be a finite number"),
        ({"label_smoothing": 1.0}, r"--label-smoothing must be in \[0, 1\)"),
        ({"warmup_epochs": -1}, r"--warmup-epochs must be in \[0, 100000\], got -1"),
        ({"warmup_epochs": 30}, r"--warmup-epochs must be in \[0, epochs=30\)"),
        ({"momentum": 0.0}, "nesterov"),
        ({"device": "tpu:zero"}, "device"),
    ],
)
def test_bad_config_raises_one_line(changes: dict[str, Any], message: str) -> None:
    config = TrainConfig(**changes)
    with pytest.raises(ConfigError, match=message) as info:
        config.validate()
    assert "\n" not in str(info.value)
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError):
        train_model(model, loaders()[0], config=config, progress=False)
    assert states_equal(before, model.state_dict())
