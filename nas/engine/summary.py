"""The per-epoch ``summary.csv`` of a training run."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nas.engine.tensorboard import log_rows
from nas.io import atomic_write_text, read_csv

__all__ = ["SUMMARY_COLUMNS", "SUMMARY_NAME", "EpochRecord", "read_summary", "write_summary_csv"]

SUMMARY_NAME = "summary.csv"


SUMMARY_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")


@dataclass
class EpochRecord:
    """One row of ``summary.csv``: ``lr`` is the rate at the epoch's first step."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    seconds: float


# -- summary ---------------------------------------------------------------------------------------
def write_summary_csv(path: str | Path, records: Iterable[EpochRecord]) -> None:
    """Write the records as CSV (columns :data:`SUMMARY_COLUMNS`; empty cell for None), and
    mirror them to TensorBoard under ``--tensorboard`` (:mod:`nas.engine.tensorboard`)."""
    records = list(records)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for r in records:
        row = asdict(r)
        writer.writerow(["" if row[c] is None else row[c] for c in SUMMARY_COLUMNS])
    atomic_write_text(path, buf.getvalue())
    log_rows(path, [asdict(r) for r in records])


def read_summary(out: Path) -> list[dict[str, Any]]:
    """The rows of ``out/summary.csv`` (numbers as floats, empty cells as None)."""
    rows = read_csv(out / "summary.csv")
    return [{k: (float(v) if v else None) for k, v in row.items()} for row in rows]
