"""Every knob of a width search (:class:`SearchConfig`), each declared once.

The command line's ``nas search`` and ``nas sweep`` options are generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from nas.engine.config import Distillation, TrainConfig
from nas.errors import ConfigError
from nas.options import MAX_EPOCHS, option
from nas.selection.config import MIN_SAMPLES, RankConfig

if TYPE_CHECKING:
    from search_spaces import SearchSpace

__all__ = ["DEFAULT_WIDTH_RATIOS", "MIN_TOLERANCE", "WEIGHT_SAMPLING", "SearchConfig"]

DEFAULT_WIDTH_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Narrowest accepted --tolerance. The projection lands in the band whenever some widths do; the
# exact MACs of a space move in steps (ResNet-20: 55,296 MACs per channel of a stage-3 unit,
# 18,432 for two units together), so a band much narrower than that can hold no network at all.
# At 0.005 the band of a ResNet-20 target at its smallest (11.5 % of full) is 2.5 two-unit steps
# wide; random starts on resnet20/20_b/56/56_b/18 at targets down to the smallest and coarse
# width ratios all landed (tests/nas/cost/test_projection.py checks it).
MIN_TOLERANCE = 0.005
WEIGHT_SAMPLING = ("hard", "relaxed", "sandwich")


def parse_target(value: Any) -> str:
    """``--target-macs`` as text: a ratio (``0.5``) or MACs with a suffix (``60M``); checked
    against the space by :meth:`SearchConfig.target_for`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a ratio or MACs")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("not finite")
    return str(value)


@dataclass
class SearchConfig(Distillation):
    """Every knob of a search. Defaults: the main job (ResNet-20 on digits at 50 % MACs)."""

    group: ClassVar[str] = "search"

    target_macs: str = option(
        "0.5",
        "MAC budget: a ratio of the full network (0.5) or absolute (60M)",
        parse=parse_target,
        what="a ratio like 0.5 or MACs like 60M",
    )
    strategy: str = option("width-gumbel", "gate strategy", choices="nas.gates:STRATEGIES")
    width_ratios: tuple[float, ...] = option(
        DEFAULT_WIDTH_RATIOS,
        "width choices per unit as ratios of its maximum",
        gt=0,
        le=1,
        metavar="R,R,...",
    )
    width_multiple: int = option(
        1,
        "round every width choice to a multiple of this (8: often faster on real hardware)",
        ge=1,
    )
    tau0: float = option(5.0, "initial Gumbel-softmax temperature", gt=0)
    tau_min: float = option(0.1, "final temperature", gt=0)
    schedule: str = option("exponential", "temperature schedule", choices="nas.gates:SCHEDULES")
    hard: bool = option(False, "straight-through hard Gumbel samples in the architecture steps")
    weight_sampling: str = option(
        "hard",
        "widths of the weight steps: one hard (discrete) sample from the distribution, a relaxed "
        "(soft) one, or the sandwich rule (largest, smallest and --sandwich-samples hard samples, "
        "distilled in place from the largest)",
        choices=WEIGHT_SAMPLING,
    )
    sandwich_samples: int = option(
        2, "--weight-sampling sandwich: sampled widths per step besides the two extremes", ge=0
    )
    arch_fraction: float = option(
        0.5,
        "share of the training split that trains the architecture parameters during the search "
        "(the rest trains the weights; TAS: half)",
        gt=0,
        lt=1,
    )
    warmup_epochs: int = option(
        10, "epochs training the weights alone at random widths", ge=0, le=MAX_EPOCHS
    )
    search_epochs: int = option(
        20, "epochs alternating weight and architecture steps", ge=1, le=MAX_EPOCHS
    )
    lr: float = option(0.05, "weight learning rate (SGD, warm-up and search)", gt=0)
    momentum: float = option(0.9, "SGD momentum (search and fine-tuning)", ge=0, lt=1)
    weight_decay: float = option(5e-4, "weight decay (search and fine-tuning)", ge=0)
    arch_lr: float = option(0.05, "Adam learning rate of the architecture parameters", gt=0)
    arch_weight_decay: float = option(0.0, "weight decay of the architecture parameters", ge=0)
    budget: str = option(
        "lagrangian",
        "budget loss on the expected MACs: a Lagrange multiplier raised by dual ascent, a smooth "
        "penalty, or the previous release's TAS rule",
        choices="nas.cost:BUDGETS",
    )
    budget_weight: float = option(
        2.0,
        "weight of the budget's proportional part (lagrangian), of the penalty, or of the TAS loss",
        ge=0,
    )
    budget_lr: float = option(
        0.2, "--budget lagrangian: dual-ascent step of the multiplier per architecture step", ge=0
    )
    budget_band: float = option(
        0.05,
        "--budget tas: the loss idles while the argmax net is at most this much under",
        gt=0,
        lt=1,
    )
    entropy_weight: float = option(
        1.0,
        "weight of the crispness term (mean normalised entropy of the width distributions), "
        "raised linearly from 0 over the search epochs",
        ge=0,
    )
    tolerance: float = option(
        0.02,
        "final MACs within target x (1 +- tolerance)",
        ge=MIN_TOLERANCE,
        lt=1,
    )
    projection: str = option(
        "dp",
        "how the found widths are brought into the band: the most probable widths in it "
        "(dynamic programming), or the previous release's greedy steps",
        choices="nas.cost:PROJECTIONS",
    )
    order: str = option(
        "l1",
        "channel importance used to order channels before the search",
        choices="nas.importance:CRITERIA",
    )
    finetune_epochs: int = option(
        30, "fine-tuning epochs of the found network", ge=0, le=MAX_EPOCHS
    )
    finetune_lr: float = option(0.05, "fine-tuning learning rate", gt=0)
    from_scratch: bool = option(
        False, "retrain the found widths from random init instead of fine-tuning"
    )
    compare: bool = option(
        False,
        "also build the uniform-width network of the same MACs from the same final supernet and "
        "fine-tune it exactly like the found one (uniform_acc in metrics.json)",
    )
    select: str = option(
        "argmax",
        "final widths: projected argmax of the logits, or the best of a GCN predictor's top-k "
        "(see nas rank)",
        choices="nas.selection:SELECTIONS",
    )
    rank_samples: int = option(
        200, "--select predictor: sub-networks scored to fit the GCN", ge=MIN_SAMPLES
    )
    rank_pool: int = option(10_000, "--select predictor: candidates ranked by the GCN", ge=1)
    rank_top_k: int = option(5, "--select predictor: best candidates fine-tuned briefly", ge=1)
    seed: int = option(0, "seed for everything")
    device: str = option("cpu", "cpu, cuda, cuda:1, mps...")

    def check(self) -> None:
        """Rules across options, checked before anything is written or trained."""
        if self.tau_min > self.tau0:
            raise ConfigError(
                f"need --tau-min <= --tau0, got --tau-min {self.tau_min} and --tau0 {self.tau0}"
            )
        if self.from_scratch and self.finetune_epochs == 0:
            raise ConfigError(
                "--from-scratch needs --finetune-epochs >= 1 (with 0 the found network would "
                "keep its random initialisation)"
            )
        if self.rank_top_k > self.rank_pool:
            raise ConfigError(
                f"--rank-top-k must be between 1 and --rank-pool {self.rank_pool}, "
                f"got {self.rank_top_k}"
            )
        self.finetune_config().validate()

    def rank_config(self) -> RankConfig:
        """The GCN ranking options of ``--select predictor`` (the rest at their defaults)."""
        return RankConfig(
            samples=self.rank_samples, pool=self.rank_pool, top_k=self.rank_top_k, seed=self.seed
        )

    def finetune_config(self) -> TrainConfig:
        """Training options of the fine-tuning (or retraining) of the found network."""
        return self.weight_config(max(1, self.finetune_epochs), self.finetune_lr)

    def weight_config(self, epochs: int, lr: float) -> TrainConfig:
        """SGD options for the network weights (search or fine-tuning phase)."""
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
        return Distillation(kd_alpha=self.kd_alpha, kd_temperature=self.kd_temperature)

    def choices(self, space: SearchSpace) -> dict[str, list[int]]:
        from nas.supernet import width_choices

        return {
            u.name: width_choices(u.max_width, self.width_ratios, self.width_multiple)
            for u in space.units
        }

    def target_for(self, space: SearchSpace) -> float:
        """The target in MACs; refuses targets the width choices cannot reach."""
        from nas.cost import parse_target_macs, smallest_macs

        target = parse_target_macs(self.target_macs, space.macs())
        floor = smallest_macs(space, self.choices(space))
        if target < floor * (1 - self.tolerance):
            raise ConfigError(
                f"--target-macs {self.target_macs} ({target:,.0f} MACs) is below the smallest "
                f"network the width choices allow ({floor:,} MACs, "
                f"{floor / space.macs():.1%} of full); lower the smallest width ratio"
            )
        return target
