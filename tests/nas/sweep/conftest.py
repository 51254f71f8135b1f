"""Tiny sweeps and helpers shared by the nas.sweep tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage

from nas.jobs.common import RunOptions
from nas.sweep import SweepConfig, run_sweep
from nas.width_search import SearchConfig

BUDGETS = (0.3, 0.6)


TINY = SearchConfig(warmup_epochs=1, search_epochs=1, finetune_epochs=1)


CLI_SWEEP = [
    "--budgets",
    "0.3,0.6",
    "--baseline-epochs",
    "1",
    "--warmup-epochs",
    "0",
    "--search-epochs",
    "1",
    "--finetune-epochs",
    "1",
    "--no-uniform",
    "--quiet",
]


def cli_sweep(out: Path, *extra: str) -> list[str]:
    """``nas sweep`` argv for a tiny sweep (later options override earlier ones)."""
    return ["sweep", "--out", str(out), *CLI_SWEEP, *extra]


def options(out: Path) -> RunOptions:
    return RunOptions(out_dir=str(out), baseline_epochs=1, progress=False)


def sweep(out: Path, trials: int, *, uniform: bool = False) -> dict[str, Any]:
    return run_sweep(
        options(out), TINY, SweepConfig(trials=trials, budgets=BUDGETS, uniform=uniform)
    )


def load_study(out: Path, name: str = "channel-nas") -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(out / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def trial_dirs(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "trials").iterdir() if p.is_dir())


def _one_line_error(code: int, err: str, word: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "error" in err and word in err, err
