"""TensorBoard event files beside a run's CSV summaries (``--tensorboard``).

A command started with ``--tensorboard`` runs inside :func:`tensorboard_run`, which makes its
run directory the root of the event files. Every ``summary.csv`` written under that root (the
baseline's, the search's, the fine-tuning's, a transfer's) is mirrored, row by row, as scalars in
``RUN_DIR/tb/<the summary's folder relative to the run>`` (``tb/baseline``, ``tb/finetune``;
the run's own summary in ``tb/train`` or ``tb/search``):
one tag per numeric column (``train_loss``, ``val_acc``, ``lr``, ``tau``, ``multiplier``,
``expected_macs_ratio``...), the epoch as the step, so the curves are exactly the CSV's. The
search adds, per epoch, each unit's expected width and largest choice probability
(``units/expected_width/<unit>``, ``units/max_prob/<unit>``) and the distribution of each unit's
width choices as a histogram (``widths/<unit>``). Writers are opened on the first row (after the
run directory is prepared, so ``--overwrite`` never meets them) and, on ``--resume``, purge what
an interrupted run logged before re-logging every row. Only the writing process logs.

``tensorboard`` is an optional extra (``pip install -e ".[tensorboard]"``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from nas.errors import require_extra
from nas.options import LOCAL, NOT_RECORDED, Options, option
from search_spaces.files import is_writer

__all__ = [
    "TB_DIR",
    "TensorBoardOptions",
    "enabled",
    "log_distributions",
    "log_rows",
    "log_scalars",
    "require_tensorboard",
    "tensorboard_run",
]

TB_DIR = "tb"


@dataclass
class TensorBoardOptions(Options):
    """``--tensorboard``, declared once for every command that trains."""

    group: ClassVar[str] = "monitor"

    tensorboard: bool = option(
        False,
        "also write TensorBoard event files under OUT/tb/ (every summary.csv's columns per "
        "epoch; a search's per-unit widths and choice distributions); needs the tensorboard "
        'extra: pip install -e ".[tensorboard]"',
        tags=(LOCAL, NOT_RECORDED),
    )

    def check(self) -> None:
        if self.tensorboard:
            require_tensorboard()  # one line before any work
        super().check()


class _Log:
    """The open writers of one run (one per summary folder) and the rows each has logged."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name  # the folder of the run's own summary (at its root)
        self.writers: dict[str, Any] = {}
        self.logged: dict[str, int] = {}

    def writer(self, folder: Path) -> tuple[str, Any]:
        try:
            rel = folder.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:  # a file outside the run (none is written so): its folder's name
            rel = folder.name
        name = self.name if rel in ("", ".") else rel
        if name not in self.writers:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step 0: what an interrupted run logged goes; every row is logged again
            self.writers[name] = SummaryWriter(str(self.root / TB_DIR / name), purge_step=0)
            self.logged[name] = 0
        return name, self.writers[name]

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


_ACTIVE: ContextVar[_Log | None] = ContextVar("nas_tensorboard", default=None)


def require_tensorboard() -> None:
    """Refuse (one line naming the extra) where TensorBoard is not installed."""
    require_extra(("tensorboard",), "tensorboard", "--tensorboard")


@contextmanager
def tensorboard_run(
    out_dir: str | Path, enabled: bool = True, *, name: str = "train"
) -> Iterator[None]:
    """Within it, summaries written under ``out_dir`` are mirrored to ``out_dir/tb/`` (see the
    module; the summary at the run's root to ``tb/<name>``); nothing when not ``enabled``."""
    if not enabled:
        yield
        return
    require_tensorboard()
    log = _Log(Path(out_dir), name)
    token = _ACTIVE.set(log)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        log.close()


def _active() -> _Log | None:
    log = _ACTIVE.get()
    return log if log is not None and is_writer() else None


def log_rows(summary: str | Path, rows: Sequence[Mapping[str, Any]], step: str = "epoch") -> None:
    """The rows of ``summary`` (a CSV's, in order) not logged yet, as scalars: every numeric
    column but ``step`` under its own name, at the row's ``step``."""
    log = _active()
    if log is None:
        return
    name, writer = log.writer(Path(summary).parent)
    for row in rows[log.logged[name] :]:
        at = int(row[step])
        for key, value in row.items():
            if key != step and isinstance(value, int | float) and not isinstance(value, bool):
                writer.add_scalar(key, float(value), at)
    log.logged[name] = len(rows)
    writer.flush()


def log_scalars(summary: str | Path, step: int, values: Mapping[str, float]) -> None:
    """Extra scalars (``tag -> value``) at ``step`` beside the rows of ``summary``."""
    log = _active()
    if log is None:
        return
    _, writer = log.writer(Path(summary).parent)
    for tag, value in values.items():
        writer.add_scalar(tag, float(value), step)
    writer.flush()


def log_distributions(
    summary: str | Path, step: int, values: Mapping[str, tuple[Sequence[int], torch.Tensor]]
) -> None:
    """Discrete distributions (``tag -> (values, probabilities)``, values ascending) as
    histograms at ``step`` beside the rows of ``summary``: one bucket per value, its count the
    value's probability."""
    log = _active()
    if log is None:
        return
    _, writer = log.writer(Path(summary).parent)
    for tag, (points, probs) in values.items():
        x = torch.tensor([float(v) for v in points], dtype=torch.float64)
        p = probs.detach().double().cpu()
        writer.add_histogram_raw(
            tag,
            min=float(x[0]),
            max=float(x[-1]),
            num=float(p.sum()),
            sum=float((p * x).sum()),
            sum_squares=float((p * x * x).sum()),
            bucket_limits=x.tolist(),
            bucket_counts=p.tolist(),
            global_step=step,
        )
    writer.flush()


def enabled() -> bool:
    """Whether this process mirrors its summaries to TensorBoard now."""
    return _active() is not None
