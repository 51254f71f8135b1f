"""What a sweep explores and where it is stored (:class:`SweepConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

from nas.errors import ConfigError
from nas.options import Options, option

if TYPE_CHECKING:
    import optuna

    from nas.width_search import SearchConfig

__all__ = ["SAMPLERS", "TUNABLE", "SweepConfig"]

TUNABLE: dict[str, tuple[float, float]] = {  # log-uniform ranges of the tunable knobs
    "budget_weight": (0.5, 8.0),
    "tau0": (1.0, 10.0),
    "arch_lr": (0.005, 0.2),
}
SAMPLERS = ("nsga2", "tpe")


@dataclass
class SweepConfig(Options):
    """What the study explores and where it is stored (see :mod:`nas.sweep`). The sweep's
    random state comes from the search's ``seed``."""

    group: ClassVar[str] = "sweep"

    trials: int = option(6, "trials (searches) in the study", ge=1)
    macs_range: tuple[float, float] | None = option(
        (0.2, 0.9), "MAC targets drawn from LO,HI (ratios)", gt=0, le=1, metavar="LO,HI"
    )
    budgets: tuple[float, ...] | None = option(
        None,
        "MAC targets from this list instead, e.g. 0.25,0.5,0.75",
        gt=0,
        le=1,
        metavar="B,B,...",
    )
    tune: tuple[str, ...] = option(
        ("budget_weight", "tau0", "arch_lr"),
        "search knobs each trial draws ('' = none)",
        choices=tuple(TUNABLE),
        metavar="KNOB,...",
    )
    sampler: str = option("nsga2", "Optuna sampler", choices=SAMPLERS)
    storage: str | None = option(
        None,
        "Optuna RDB storage URL, e.g. postgresql://host/db (default: a journal file in --out). "
        "Processes on other machines must use the same --out directory (a shared filesystem "
        "with working file locks) and the same options; SQLite serves one process at a time",
    )
    study: str = option("channel-nas", "study name")
    workers: int = option(
        1,
        "processes this command starts (not with SQLite); when one stops on an error, the "
        "others finish their trial and stop",
        ge=1,
    )
    uniform: bool = option(True, "skip the uniform-width baseline curve", flag="--no-uniform")

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
