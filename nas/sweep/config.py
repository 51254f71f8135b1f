"""What a sweep explores and where it is stored (:class:`SweepConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from nas.errors import ConfigError
from nas.options import LOCAL, VOLATILE, Options, option, tagged, target_tag, tunable
from nas.width_search.config import SearchConfig

if TYPE_CHECKING:
    import optuna

__all__ = ["AXES", "SAMPLERS", "TUNABLE", "CostAxis", "SweepConfig", "budget_options"]

# the search options a sweep may draw, with their log-uniform ranges (declared with the
# options), those --tune draws by default first
DEFAULT_TUNE = ("budget_weight", "tau0", "arch_lr")
_RANGES = tunable(SearchConfig)
TUNABLE: dict[str, tuple[float, float]] = {
    name: _RANGES[name] for name in (*DEFAULT_TUNE, *sorted(_RANGES.keys() - set(DEFAULT_TUNE)))
}
SAMPLERS = ("nsga2", "tpe")


@dataclass(frozen=True)
class CostAxis:
    """What a sweep under one cost of the search (``--cost``) calls its budgets and minimises."""

    cost: str  # the search's --cost
    value: str  # the second objective, minimised: a key of a trial's metrics.json
    ratio: str  # the same as a ratio of the full network's

    @property
    def param(self) -> str:
        """The trial parameter holding the budget (a ratio of the full network's cost): the
        search option declared as this cost's target."""
        (name,) = tagged(SearchConfig, target_tag(self.cost))
        return name


AXES: dict[str, CostAxis] = {
    "macs": CostAxis("macs", "macs", "macs_ratio"),
    # the predicted latency: deterministic, whatever else runs beside a worker (measured
    # latencies of trials run side by side are not); each trial also records the measured one
    "latency": CostAxis("latency", "predicted_latency_ms", "predicted_latency_ratio"),
}


def budget_options() -> frozenset[str]:
    """The search options holding a budget (a sweep sets them per trial)."""
    return frozenset(axis.param for axis in AXES.values())


@dataclass
class SweepConfig(Options):
    """What the study explores and where it is stored (see :mod:`nas.sweep`). The sweep's
    random state comes from the search's ``seed``."""

    group: ClassVar[str] = "sweep"

    trials: int = option(6, "trials (searches) in the study", ge=1, tags=(VOLATILE,))
    macs_range: tuple[float, float] | None = option(
        (0.2, 0.9),
        "targets drawn from LO,HI: ratios of the full network's MACs (with --cost latency: of "
        "its predicted latency)",
        gt=0,
        le=1,
        metavar="LO,HI",
    )
    budgets: tuple[float, ...] | None = option(
        None,
        "targets from this list instead (ratios, as --macs-range), e.g. 0.25,0.5,0.75",
        gt=0,
        le=1,
        metavar="B,B,...",
    )
    tune: tuple[str, ...] = option(
        DEFAULT_TUNE,
        "search knobs each trial draws ('' = none)",
        choices=tuple(TUNABLE),
        metavar="KNOB,...",
    )
    sampler: str = option("nsga2", "Optuna sampler", choices=SAMPLERS)
    storage: str | None = option(
        None,
        "Optuna RDB storage URL, e.g. postgresql+psycopg://user@host/db (default: a journal "
        "file in --out). Processes on other machines must use the same --out directory (a "
        "shared filesystem with working file locks) and the same options; SQLite serves one "
        "process at a time",
        tags=(LOCAL,),
    )
    study: str = option("channel-nas", "study name", tags=(LOCAL,))
    workers: int = option(
        1,
        "processes this command starts (not with SQLite); when one stops on an error, the "
        "others finish their trial and stop",
        ge=1,
        tags=(VOLATILE,),
    )
    heartbeat: float = option(
        30.0,
        "seconds between a worker's heartbeats: a trial on another machine that misses 4 is "
        "taken as dead (its machine stopped), failed and run again by a live worker",
        gt=0,
        metavar="SECONDS",
        tags=(VOLATILE,),
    )
    uniform: bool = option(
        True, "skip the uniform-width baseline curve", flag="--no-uniform", tags=(LOCAL,)
    )

    def check(self) -> None:
        if self.budgets is not None:
            twice = [b for i, b in enumerate(self.budgets) if b in self.budgets[:i]]
            if twice:
                raise ConfigError(f"--budgets lists {twice[0]:g} more than once")
            if self.trials < len(self.budgets):
                raise ConfigError(
                    f"--trials {self.trials} is fewer than the {len(self.budgets)} --budgets: "
                    "every budget needs a trial"
                )
        elif self.macs_range is not None:
            lo, hi = self.macs_range
            if not lo < hi:
                raise ConfigError(
                    f"--macs-range must be LO,HI with 0 < LO < HI <= 1, got {lo:g},{hi:g}"
                )
        else:
            raise ConfigError("give --macs-range or --budgets")
        if self.workers > 1 and self.is_sqlite:
            raise ConfigError(
                "SQLite does not support several workers at once; use the "
                "default journal file, or PostgreSQL/MySQL for many machines"
            )

    @property
    def is_sqlite(self) -> bool:
        return bool(self.storage) and str(self.storage).startswith("sqlite")

    def suggest(self, trial: optuna.Trial, base: SearchConfig) -> SearchConfig:
        """The search configuration of one trial: its budget in the search's cost
        (:data:`AXES`) and its knobs."""
        param = AXES[base.cost].param
        if self.budgets is not None:
            target = float(trial.suggest_categorical(param, list(self.budgets)))
        else:
            assert self.macs_range is not None
            target = trial.suggest_float(param, *self.macs_range)
        values: dict[str, Any] = {param: f"{target:.6g}", "seed": base.seed}
        for name in self.tune:
            lo, hi = TUNABLE[name]
            values[name] = trial.suggest_float(name, lo, hi, log=True)
        return replace(base, **values)
