"""Tiny sweeps and helpers shared by the nas.sweep tests."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from nas.runs import RunOptions
from nas.sweep import SweepConfig, run_sweep
from nas.width_search import SearchConfig

BUDGETS = (0.3, 0.6)


# the default chooser (evolution), small: the sweeps' mechanics are tested here, the choosers in
# tests/nas/selection
TINY = SearchConfig(
    warmup_epochs=1, search_epochs=1, finetune_epochs=1, population=4, generations=1
)


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
    *("--population", "4", "--generations", "1"),
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


def load_study(out: Path, name: str = "channel-nas", url: str | None = None) -> optuna.Study:
    """The study of the sweep in ``out``: its journal file, or the database at ``url``."""
    storage = (
        optuna.storages.RDBStorage(url)
        if url
        else JournalStorage(JournalFileBackend(str(out / "journal.log")))
    )
    return optuna.load_study(study_name=name, storage=storage)


STORAGES = ("journal", pytest.param("postgresql", marks=pytest.mark.postgres))


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> dict[str, str]:
    """Each storage a sweep runs on: the default journal file, and a real PostgreSQL server
    (``source .ci/postgres`` starts one and exports ``NAS_TEST_POSTGRES_URL``; CI sets
    ``NAS_REQUIRE_POSTGRES``, so there the tests fail rather than skip without it; they are
    marked ``postgres``). Gives ``url`` ("" for the journal) and a fresh study ``name``."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    if request.param == "journal":
        return {"url": "", "name": name}
    url = os.environ.get("NAS_TEST_POSTGRES_URL", "")
    if not url:
        if os.environ.get("NAS_REQUIRE_POSTGRES"):
            pytest.fail("NAS_REQUIRE_POSTGRES is set but NAS_TEST_POSTGRES_URL is not")
        pytest.skip("no PostgreSQL server (source .ci/postgres to start one)")
    return {"url": url, "name": name}


def storage_args(storage: dict[str, str]) -> list[str]:
    """``nas sweep`` options for ``storage``."""
    return ["--study", storage["name"], *(["--storage", storage["url"]] if storage["url"] else [])]


def trial_dirs(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "trials").iterdir() if p.is_dir())


def _one_line_error(code: int, err: str, word: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and "error" in err and word in err, err
