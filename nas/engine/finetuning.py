"""Fine-tuning a smaller network under a MAC budget: the options every method shares.

A width search (``nas search``) and a criterion pruning (``nas prune``) both end the same way: a
network of the target MACs, fine-tuned (or retrained from scratch) with distillation from the
full network, and optionally beside a reference trained exactly the same way (``--compare``):
the uniform-width network of the same MACs, or what the method says it is (``reference`` in
``metrics.json``). :class:`FinetuneConfig` declares those options once; both methods'
configurations extend it, so ``nas search`` and ``nas prune`` take the same flags with the same
meaning and defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from nas.engine.config import Distillation, TrainConfig
from nas.engine.evaluation import evaluate
from nas.engine.loop import train_model
from nas.engine.state import loader_state, restore_loader
from nas.errors import ConfigError
from nas.options import AFTER_SEARCH, AFTER_WARMUP, LOCAL, MAX_EPOCHS, option, target_tag
from search_spaces import WidthSpec

if TYPE_CHECKING:
    from nas.cost.base import CostModel
    from nas.cost.target import ResolvedBudget

__all__ = [
    "MIN_TOLERANCE",
    "FinetuneConfig",
    "default_reference",
    "finetune",
    "finetune_and_compare",
    "parse_target",
    "uniform_staircase",
    "uniform_twin",
]

# Narrowest accepted --tolerance. The projection lands in the band whenever some widths do; the
# exact MACs of a space move in steps (ResNet-20: 55,296 MACs per channel of a stage-3 unit,
# 18,432 for two units together), so a band much narrower than that can hold no network at all.
# At 0.005 the band of a ResNet-20 target at its smallest (11.5 % of full) is 2.5 two-unit steps
# wide; random starts on resnet20/20_b/56/56_b/18 at targets down to the smallest and coarse
# width ratios all landed (tests/nas/cost/test_projection.py checks it).
MIN_TOLERANCE = 0.005


def parse_target(value: Any) -> str:
    """``--target-macs`` as text: a ratio (``0.5``) or MACs with a suffix (``60M``); resolved
    against the space once per run (:func:`nas.cost.resolve_budget`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a ratio or MACs")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not finite")
    return str(value)


@dataclass
class FinetuneConfig(Distillation):
    """The budget, fine-tuning, distillation and ``--compare`` options of a method that
    delivers a smaller network (``nas search``, ``nas prune``)."""

    group: ClassVar[str] = "fine-tuning"

    target_macs: str = option(
        "0.5",
        "MAC budget: a ratio of the full network (0.5) or absolute (60M)",
        parse=parse_target,
        what="a ratio like 0.5 or MACs like 60M",
        tags=(AFTER_WARMUP, target_tag("macs")),
    )
    tolerance: float = option(
        0.02,
        "final MACs within target x (1 +- tolerance)",
        ge=MIN_TOLERANCE,
        lt=1,
        tags=(AFTER_WARMUP,),
    )
    finetune_epochs: int = option(
        30, "fine-tuning epochs of the found network", ge=0, le=MAX_EPOCHS, tags=(AFTER_SEARCH,)
    )
    finetune_lr: float = option(0.05, "fine-tuning learning rate", gt=0, tags=(AFTER_SEARCH,))
    momentum: float = option(0.9, "SGD momentum (search and fine-tuning)", ge=0, lt=1)
    weight_decay: float = option(5e-4, "weight decay (search and fine-tuning)", ge=0)
    from_scratch: bool = option(
        False,
        "retrain the found widths from random init instead of fine-tuning",
        tags=(AFTER_SEARCH,),
    )
    compare: bool = option(
        False,
        "also fine-tune a reference exactly like the found network: the uniform-width network "
        "of the same MACs from the same weights (nas prune --allocation uniform: the same "
        "widths with seeded random channels); reference and uniform_acc in metrics.json",
        tags=(AFTER_SEARCH,),
    )
    seed: int = option(0, "seed for everything")
    device: str = option("cpu", "cpu, cuda, cuda:1, mps...", tags=(AFTER_SEARCH, LOCAL))

    def check(self) -> None:
        """Rules across options, checked before anything is written or trained."""
        super().check()
        if self.from_scratch and self.finetune_epochs == 0:
            raise ConfigError(
                "--from-scratch needs --finetune-epochs >= 1 (with 0 the found network would "
                "keep its random initialisation)"
            )
        self.finetune_config().validate()

    def finetune_config(self) -> TrainConfig:
        """Training options of the fine-tuning (or retraining) of the found network."""
        return self.weight_config(max(1, self.finetune_epochs), self.finetune_lr)

    def weight_config(self, epochs: int, lr: float) -> TrainConfig:
        """SGD options for the network weights."""
        return TrainConfig(
            epochs=epochs,
            lr=lr,
            momentum=self.momentum,
            nesterov=self.momentum > 0,  # plain SGD at --momentum 0
            weight_decay=self.weight_decay,
            seed=self.seed,
            device=self.device,
        )

    def distill(self) -> Distillation:
        return Distillation(**{f.name: getattr(self, f.name) for f in fields(Distillation)})


def finetune(
    small: nn.Module,
    teacher: nn.Module | None,
    train_loader: Any,
    val_loader: Iterable[Any] | None,
    *,
    config: FinetuneConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> None:
    """Fine-tune (or, with ``from_scratch``, retrain) the found network, distilling from
    ``teacher`` when ``kd_alpha > 0``."""
    if config.finetune_epochs == 0:
        return
    use_teacher = teacher if config.kd_alpha > 0 else None
    train_model(
        small,
        train_loader,
        config=config.finetune_config(),
        val_loader=val_loader,
        teacher=use_teacher,
        distill=config.distill(),
        out_dir=out_dir,
        checkpoint=out_dir is not None,
        resume=resume,
        progress=progress,
        desc="retrain" if config.from_scratch else "fine-tune",
    )


def uniform_twin(budget: ResolvedBudget, value: float, *, multiple: int = 1) -> WidthSpec:
    """The uniform-width spec (one ratio for every unit, rounded to ``multiple``) whose cost
    comes closest to ``value`` (in the budget's unit) among those within the budget's band; a
    :class:`ConfigError` where none lies there (say the rounding of narrow units, or the
    staircase of a latency table's uniform widths, steps over the whole band)."""
    space, target = budget.space, budget.target
    if not budget.counts_macs:
        fitting = [
            (c, w)
            for c, w in uniform_staircase(budget.cost, multiple)
            if abs(c / target - 1) <= budget.tolerance
        ]
        if not fitting:
            raise ConfigError(
                f"--compare: no uniform width of {space.name} lies within --tolerance "
                f"{budget.tolerance:g} of the target {target:.4g} {budget.unit}; widen "
                "--tolerance or change the target"
            )
        return space.spec(min(fitting, key=lambda cw: abs(cw[0] - value))[1])
    full = space.macs()
    candidates = [  # nearest to the found network's MACs, else nearest to the target
        space.uniform_widths_for_macs(min(1.0, m / full), multiple) for m in (value, target)
    ]
    fitting_widths = [w for w in candidates if abs(space.macs(w) / target - 1) <= budget.tolerance]
    widths = min(fitting_widths or candidates, key=lambda w: abs(space.macs(w) - value))
    got = space.macs(widths)
    if not fitting_widths:
        raise ConfigError(
            f"--compare: no uniform width of {space.name} lies within --tolerance "
            f"{budget.tolerance:g} of the target {target:,.0f} MACs (the nearest has "
            f"{got:,} MACs, {got / full:.1%} of full); widen --tolerance or change --target-macs"
        )
    return space.spec(widths)


def uniform_staircase(cost: CostModel, multiple: int = 1) -> list[tuple[float, dict[str, int]]]:
    """Every distinct uniform-width assignment of ``cost``'s space (one ratio for every unit, in
    steps of 0.5 %, rounded to ``multiple``) with its cost, by growing ratio."""
    seen: dict[tuple[int, ...], dict[str, int]] = {}
    for i in range(1, 201):
        widths = cost.space.uniform_widths_for_macs(i / 200, multiple)
        seen.setdefault(tuple(widths.values()), widths)
    return [(cost.exact(w), w) for w in seen.values()]


def default_reference(config: FinetuneConfig, budget: ResolvedBudget) -> str:
    """What ``--compare`` fine-tunes beside the found network by default, in words (the
    ``reference`` of its ``metrics.json``)."""
    measure = "MACs" if budget.counts_macs else f"predicted {budget.cost.name}"
    how = "trained from scratch" if config.from_scratch else "cut from the same supernet"
    return f"uniform widths of the same {measure}, {how}"


def finetune_and_compare(
    start: Callable[[WidthSpec], nn.Module],
    spec: WidthSpec,
    teacher: nn.Module,
    train_loader: Any,
    val_loader: Iterable[Any],
    test_loader: Iterable[Any],
    config: FinetuneConfig,
    *,
    twin: WidthSpec | None = None,
    twin_start: Callable[[WidthSpec], nn.Module] | None = None,
    reference: str = "",
    out: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """``start(spec)`` fine-tuned (into ``out/finetune``); with ``config.compare`` also a
    reference network fine-tuned exactly the same way (into ``out/uniform``): the same options,
    teacher, seed and batches (the loader is rewound to where the first fine-tuning began).

    The reference is ``twin_start(twin)`` (default ``start``; ``twin``, needed with
    ``compare``: say :func:`uniform_twin` of the budget), and ``reference`` says in words what
    it is (:func:`default_reference` for a uniform twin). Returns the fine-tuned network and the
    reference's numbers (``reference``, ``uniform_acc``, ``uniform_val_acc``, ``uniform_macs``,
    ...; the keys keep their historical ``uniform_`` names whatever the reference; none
    without ``compare``)."""
    begin = loader_state(train_loader)
    small = start(spec)
    finetune(
        small,
        teacher,
        train_loader,
        val_loader,
        config=config,
        out_dir=out / "finetune" if out is not None else None,
        resume=resume,
        progress=progress,
    )
    if not config.compare:
        return small, {}
    if twin is None:
        raise ValueError("finetune_and_compare: --compare needs the reference's widths (twin)")
    twin_spec = twin
    other = (twin_start or start)(twin_spec)
    restore_loader(train_loader, begin)
    finetune(
        other,
        teacher,
        train_loader,
        val_loader,
        config=config,
        out_dir=out / "uniform" if out is not None else None,
        resume=resume,
        progress=progress,
    )
    return small, {
        "reference": reference,
        "uniform_acc": evaluate(other, test_loader, device=config.device).accuracy,
        "uniform_val_acc": evaluate(other, val_loader, device=config.device).accuracy,
        "uniform_macs": twin_spec.macs(),
        "uniform_macs_ratio": twin_spec.macs_ratio(),
        "uniform_widths": dict(twin_spec.widths),
    }
