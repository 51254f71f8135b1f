"""``nas sweep``: many searches as one Optuna study, and the accuracy/MAC Pareto front.

Each trial picks a MAC target (from ``macs_range`` or from a list of ``budgets``) and the search
hyper-parameters named in ``tune`` (budget-loss weight, initial temperature, architecture
learning rate), runs :func:`nas.workflows.run_search` into ``DIR/trials/trial-NNNN`` and reports
two objectives: test accuracy (maximised) and MACs (minimised). The sampler is passed explicitly
and seeded (NSGA-II by default, TPE with ``sampler="tpe"``).

Shared work: the full baseline is trained once per sweep (``DIR/baseline``), and so is the
supernet's warm-up (``DIR/warmup.pt``, :func:`nas.search.warm_up`); every trial starts from both,
so a sweep of N budgets costs them once instead of N times, with the results of N searches alone.

Early stopping: Optuna's pruners raise ``NotImplementedError`` in multi-objective studies, so no
trial is pruned. A trial is short (it inherits the baseline) and its search already stops at the
budget; a failed trial is marked FAIL and replaced.

Storage: by default a journal file ``DIR/journal.log`` (safe for several processes on one
machine); ``storage`` takes any Optuna storage URL (PostgreSQL/MySQL for many machines). Running
the same sweep again resumes it: finished trials are kept and only the missing ones run. Several
processes started with the same storage and study cooperate: trials are created under a lock
(a file lock in the sweep directory), so together they run exactly ``trials`` trials.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from tqdm import tqdm

from nas.errors import ConfigError
from nas.extract import load_model, save_model
from nas.io import atomic_write_text, write_json
from nas.search import SearchConfig, finetune
from nas.train import evaluate, seed_everything

TUNABLE: dict[str, tuple[float, float]] = {  # log-uniform ranges of the tunable knobs
    "budget_weight": (0.5, 8.0),
    "tau0": (1.0, 10.0),
    "arch_lr": (0.005, 0.2),
}
SAMPLERS = ("nsga2", "tpe")
OBJECTIVES = ("test accuracy (maximise)", "MACs (minimise)")


@dataclass
class SweepConfig:
    """What the study explores and where it is stored."""

    trials: int = 6
    macs_range: tuple[float, float] | None = (0.2, 0.9)
    budgets: tuple[float, ...] | None = None  # overrides macs_range
    tune: tuple[str, ...] = ("budget_weight", "tau0", "arch_lr")
    sampler: str = "nsga2"
    storage: str | None = None  # default: journal file in the sweep directory
    study: str = "channel-nas"
    workers: int = 1  # processes this command starts
    seed: int = 0

    def validate(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"--trials must be at least 1, got {self.trials}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose nsga2 or tpe")
        unknown = [t for t in self.tune if t not in TUNABLE]
        if unknown:
            raise ConfigError(f"cannot tune {', '.join(unknown)}; choose from {', '.join(TUNABLE)}")
        if self.budgets is not None:
            if not self.budgets:
                raise ConfigError("--budgets is empty")
            bad = [b for b in self.budgets if not 0 < b <= 1]
            if bad:
                raise ConfigError(f"budgets must be in (0, 1], got {bad[0]}")
        elif self.macs_range is not None:
            lo, hi = self.macs_range
            if not 0 < lo < hi <= 1:
                raise ConfigError(
                    f"--macs-range must be LO,HI with 0 < LO < HI <= 1, got {lo},{hi}"
                )
        else:
            raise ConfigError("give --macs-range or --budgets")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.workers > 1 and self.storage and self.storage.startswith("sqlite"):
            raise ConfigError(
                "SQLite does not support several workers at once; use the "
                "default journal file, or PostgreSQL/MySQL for many machines"
            )

    def suggest(self, trial: optuna.Trial, base: SearchConfig) -> SearchConfig:
        """The search configuration of one trial."""
        if self.budgets is not None:
            target = float(trial.suggest_categorical("target_macs", list(self.budgets)))
        else:
            assert self.macs_range is not None
            target = trial.suggest_float("target_macs", *self.macs_range)
        values: dict[str, Any] = {"target_macs": f"{target:.6g}", "seed": base.seed}
        for name in self.tune:
            lo, hi = TUNABLE[name]
            values[name] = trial.suggest_float(name, lo, hi, log=True)
        return replace(base, **values)


# -- the study -------------------------------------------------------------------------------------
def make_sampler(config: SweepConfig) -> optuna.samplers.BaseSampler:
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=config.seed, multivariate=True)
    return optuna.samplers.NSGAIISampler(
        seed=config.seed, population_size=max(4, config.trials // 2)
    )


def open_study(out: Path, config: SweepConfig) -> optuna.Study:
    """Create or load the study (same storage and name = the same sweep)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage: Any = config.storage or JournalStorage(JournalFileBackend(str(out / "journal.log")))
    try:
        return optuna.create_study(
            study_name=config.study,
            storage=storage,
            sampler=make_sampler(config),
            directions=["maximize", "minimize"],
            load_if_exists=True,
        )
    except (ValueError, ImportError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot open storage {config.storage or out / 'journal.log'}: "
            f"{str(exc).splitlines()[0]}"
        ) from None


def cover_budgets(study: optuna.Study, config: SweepConfig) -> None:
    """With ``--budgets``, a new study's first trials take the listed budgets in order, one
    each (the sampler draws their other knobs), so every budget is searched; the sampler
    chooses the budgets of the later trials. Call under :func:`sweep_lock`."""
    if config.budgets is None or study.get_trials(deepcopy=False):
        return
    for budget in config.budgets[: config.trials]:
        study.enqueue_trial({"target_macs": budget})


@contextlib.contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """An exclusive lock shared by every process working on this sweep directory."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".sweep.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def counted(study: optuna.Study) -> int:
    """Trials that count towards the total: finished, or running in a live process."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.RUNNING)
    )


def fail_orphans(study: optuna.Study) -> None:
    """Mark RUNNING trials whose process on this machine has died as FAIL (they will be
    replaced), so an interrupted sweep resumes to the full number of trials."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("host") == host and not _alive(int(t.user_attrs.get("pid", -1))):
            study.tell(t.number, state=TrialState.FAIL)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def next_trial(study: optuna.Study, out: Path, config: SweepConfig) -> optuna.Trial | None:
    """A new trial, or None once the study has its ``trials`` (checked under the lock)."""
    with sweep_lock(out):
        fail_orphans(study)
        if counted(study) >= config.trials:
            return None
        trial = study.ask()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        return trial


# -- tables ----------------------------------------------------------------------------------------
def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        row |= {k: v for k, v in t.params.items()}
        row |= {
            k: t.user_attrs.get(k)
            for k in (
                "searched_acc",
                "macs",
                "macs_ratio",
                "params",
                "baseline_acc",
                "relaxation_gap",
                "seconds",
                "run_dir",
            )
        }
        rows.append(row)
    return rows


def pareto_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Completed trials that no other completed trial dominates (accuracy up, MACs down)."""
    done = [r for r in rows if r["state"] == "COMPLETE"]
    front = [r for r in done if not any(_dominates(o, r) for o in done)]
    return sorted(front, key=lambda r: r["macs"])


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    better_or_equal = a["searched_acc"] >= b["searched_acc"] and a["macs"] <= b["macs"]
    strictly = a["searched_acc"] > b["searched_acc"] or a["macs"] < b["macs"]
    return better_or_equal and strictly


def hypervolume(points: Sequence[tuple[float, float]], ref_ratio: float = 1.0) -> float:
    """Area dominated by (MAC ratio, accuracy/100) points against the reference (ref_ratio, 0):
    in [0, 1] when every MAC ratio is at most 1; larger is better."""
    pts = sorted((m, a / 100.0) for m, a in points if m <= ref_ratio)
    area, best = 0.0, 0.0
    for i, (m, acc) in enumerate(pts):
        best = max(best, acc)
        right = pts[i + 1][0] if i + 1 < len(pts) else ref_ratio
        area += best * (right - m)
    return area


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    columns: list[str] = []
    for r in rows:
        columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    atomic_write_text(path, buf.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# -- uniform-width baseline curve -----------------------------------------------------------------
def uniform_point(
    out: Path, ratio: float, baseline_dir: Path, data: Any, config: SearchConfig, progress: bool
) -> dict[str, Any]:
    """A uniform-width network at ``ratio`` of the MACs, extracted from the baseline and
    fine-tuned exactly like the trials (cached in ``DIR/uniform``)."""
    from nas.extract import channel_order, extract

    d = out / "uniform" / f"macs-{ratio:.4f}"
    if (d / "metrics.json").is_file():
        import json

        return dict(json.loads((d / "metrics.json").read_text()))
    full = load_model(baseline_dir)
    space = space_of(baseline_dir)
    spec = space.spec(space.uniform_widths_for_macs(ratio))
    seed_everything(config.seed)
    small = extract(full, spec, channel_order(full, space, config.order))
    finetune(small, full, data.train, data.val, config=config, progress=progress)
    point = {
        "target": ratio,
        "macs": spec.macs(),
        "macs_ratio": spec.macs_ratio(),
        "params": spec.params(),
        "test_acc": evaluate(small, data.test, device=config.device).accuracy,
    }
    save_model(small, spec, d, torchscript=False)
    write_json(d / "metrics.json", point)
    return point


def space_of(model_dir: Path) -> Any:
    from search_spaces import WidthSpec

    return WidthSpec.load(model_dir / "arch.json").get_space()


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    return fn(*args, **kwargs), time.perf_counter() - start


def progress_bar(total: int, done: int, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=done,
        desc="sweep",
        unit="trial",
        disable=not enabled,
        dynamic_ncols=True,
    )


def config_record(config: SweepConfig) -> dict[str, Any]:
    record = asdict(config)
    for key in ("macs_range", "budgets", "tune"):
        if record[key] is not None:
            record[key] = list(record[key])
    return record
