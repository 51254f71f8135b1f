"""nas.engine.summary: summary.csv."""

from __future__ import annotations

import csv
from pathlib import Path

from nas.engine import TrainConfig, train_model
from tests.nas.engine.conftest import FAST, loaders, small_cnn


def test_summary_without_val_loader_has_empty_cells(tmp_path: Path) -> None:
    train, _ = loaders()
    records = train_model(
        small_cnn(), train, config=TrainConfig(epochs=1, **FAST), out_dir=tmp_path, progress=False
    )
    assert records[0].val_acc is None and records[0].val_loss is None
    with (tmp_path / "summary.csv").open() as f:
        row = next(csv.DictReader(f))
    assert row["val_acc"] == "" and row["val_loss"] == ""
