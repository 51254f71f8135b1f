"""Every knob of a width search (:class:`SearchConfig`), each declared once.

The command line's ``nas search`` and ``nas sweep`` options are generated from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.engine.batchnorm import DEFAULT_CALIBRATION_IMAGES
from nas.engine.finetuning import MIN_TOLERANCE, FinetuneConfig
from nas.errors import ConfigError
from nas.options import AFTER_SEARCH, AFTER_WARMUP, MAX_EPOCHS, option, target_tag
from nas.selection.config import MIN_SAMPLES, RankConfig

__all__ = [
    "ARCH_SIGNALS",
    "DEFAULT_WIDTH_RATIOS",
    "MIN_TOLERANCE",
    "WEIGHT_SAMPLING",
    "SearchConfig",
]

DEFAULT_WIDTH_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
WEIGHT_SAMPLING = ("hard", "relaxed", "sandwich")
ARCH_SIGNALS = ("labels", "teacher", "consistency")


@dataclass
class SearchConfig(FinetuneConfig):
    """Every knob of a search. Defaults: the main job (ResNet-20 on digits at 50 % MACs)."""

    group: ClassVar[str] = "search"

    strategy: str = option("width-gumbel", "gate strategy", choices="nas.gates:STRATEGIES")
    strategy_option: tuple[str, ...] = option(
        (),
        "options of the gate strategy as key=value (e.g. group_size=8 for channel-gumbel; "
        "its constructor's keyword arguments)",
        metavar="KEY=VALUE,...",
    )
    static: bool = option(
        False,
        "per-input strategies (conditional-gumbel, batch-shaping): turn the gates into a static "
        "pruning after the search (channels open for fewer than --static-share of the training "
        "images removed) and extract a standalone network; without it they deliver the "
        "conditional network (DIR/conditional/)",
        tags=(AFTER_WARMUP,),
    )
    static_share: float = option(
        0.5,
        "--static: the share of training images a channel must be open for",
        gt=0,
        le=1,
        tags=(AFTER_WARMUP,),
    )
    calibrate_gates: bool = option(
        True,
        "keep the trained gate thresholds (p > 0.5) of a per-input strategy's conditional "
        "network (by default one logit offset shifts every gate's threshold so that its "
        "average MACs per validation image land in the MAC band, the per-input analogue of the "
        "projection)",
        tags=(AFTER_SEARCH,),
    )
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
    tau0: float = option(
        5.0, "initial Gumbel-softmax temperature", gt=0, tags=(AFTER_WARMUP,), tune=(1.0, 10.0)
    )
    tau_min: float = option(0.1, "final temperature", gt=0, tags=(AFTER_WARMUP,))
    schedule: str = option(
        "exponential", "temperature schedule", choices="nas.gates:SCHEDULES", tags=(AFTER_WARMUP,)
    )
    hard: bool = option(
        False,
        "straight-through hard Gumbel samples in the architecture steps",
        tags=(AFTER_WARMUP,),
    )
    weight_sampling: str = option(
        "sandwich",
        "widths of the weight steps: the sandwich rule (largest, smallest and --sandwich-samples "
        "networks with every unit's width drawn at random, distilled in place from the "
        "largest), one hard (discrete) sample from the learned distribution, or a relaxed "
        "(soft) one",
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
    arch_lr: float = option(
        0.05,
        "Adam learning rate of the architecture parameters",
        gt=0,
        tags=(AFTER_WARMUP,),
        tune=(0.005, 0.2),
    )
    arch_signal: str = option(
        "labels",
        "what the architecture step learns from: the labels (cross-entropy), the full network's "
        "soft outputs (no labels: the supernet at full width on the same images), or the "
        "agreement of the sampled network's outputs on two augmentations of the same images "
        "(no labels)",
        choices=ARCH_SIGNALS,
        tags=(AFTER_WARMUP,),
    )
    arch_weight_decay: float = option(
        0.0, "weight decay of the architecture parameters", ge=0, tags=(AFTER_WARMUP,)
    )
    cost: str = option(
        "macs",
        "what the budget counts: exact MACs (--target-macs), or the latency predicted from a "
        "measured table (--latency-table, --target-latency)",
        choices="nas.cost:COST_MODELS",
        tags=(AFTER_WARMUP,),
    )
    latency_table: str | None = option(
        None,
        "a latency table of this space and machine (nas latency-table)",
        metavar="TABLE",
        tags=(AFTER_WARMUP,),
    )
    target_latency: str | None = option(
        None,
        "--cost latency: the budget, a ratio of the full network's predicted latency (0.5) or "
        "milliseconds (4ms); replaces --target-macs",
        metavar="RATIO|MS",
        tags=(AFTER_WARMUP, target_tag("latency")),
    )
    budget: str = option(
        "lagrangian",
        "budget loss on the expected MACs: a Lagrange multiplier raised by dual ascent, a smooth "
        "penalty, or the previous release's TAS rule",
        choices="nas.cost:BUDGETS",
        tags=(AFTER_WARMUP,),
    )
    budget_weight: float = option(
        2.0,
        "weight of the budget's proportional part (lagrangian), of the penalty, or of the TAS loss",
        ge=0,
        tags=(AFTER_WARMUP,),
        tune=(0.5, 8.0),
    )
    budget_lr: float = option(
        0.2,
        "--budget lagrangian: dual-ascent step of the multiplier per architecture step",
        ge=0,
        tags=(AFTER_WARMUP,),
    )
    budget_band: float = option(
        0.05,
        "--budget tas: the loss idles while the argmax net is at most this much under",
        gt=0,
        lt=1,
        tags=(AFTER_WARMUP,),
    )
    entropy_weight: float = option(
        1.0,
        "weight of the crispness term (mean normalised entropy of the width distributions), "
        "raised linearly from 0 over the search epochs",
        ge=0,
        tags=(AFTER_WARMUP,),
    )
    projection: str = option(
        "dp",
        "how the found widths are brought into the band: the most probable widths in it "
        "(dynamic programming), or the previous release's greedy steps",
        choices="nas.cost:PROJECTIONS",
        tags=(AFTER_SEARCH,),
    )
    order: str = option(
        "l1",
        "channel importance used to order channels before the search",
        choices="nas.importance:CRITERIA",
    )
    select: str = option(
        "evolution",
        "how the final widths are chosen: the projected argmax of the logits, evolution, NAO's "
        "gradient steps in a learned embedding, or greedy slimming on candidates scored on the "
        "supernet (validation loss), or the best "
        "of a GCN predictor's top-k (see nas rank); a per-input strategy's conditional "
        "network is not chosen (its --static pruning is)",
        choices="nas.selection:SELECTIONS",
        tags=(AFTER_SEARCH,),
    )
    calib_images: int = option(
        DEFAULT_CALIBRATION_IMAGES,
        "training images on which a candidate's BatchNorm statistics are recomputed before it "
        "is scored or extracted from the supernet",
        ge=1,
    )
    population: int = option(
        16,
        "--select evolution: candidates per generation (nao: first candidates; half as many "
        "moved per round)",
        ge=2,
        tags=(AFTER_SEARCH,),
    )
    generations: int = option(
        8,
        "--select evolution: generations after the first (nao: rounds)",
        ge=0,
        le=MAX_EPOCHS,
        tags=(AFTER_SEARCH,),
    )
    rank_samples: int = option(
        200,
        "--select predictor: sub-networks scored to fit the GCN",
        ge=MIN_SAMPLES,
        tags=(AFTER_SEARCH,),
    )
    rank_pool: int = option(
        10_000, "--select predictor: candidates ranked by the GCN", ge=1, tags=(AFTER_SEARCH,)
    )
    rank_top_k: int = option(
        5, "--select predictor: best candidates fine-tuned briefly", ge=1, tags=(AFTER_SEARCH,)
    )

    def check(self) -> None:
        """Rules across options, checked before anything is written or trained."""
        if self.tau_min > self.tau0:
            raise ConfigError(
                f"need --tau-min <= --tau0, got --tau-min {self.tau_min} and --tau0 {self.tau0}"
            )
        if self.rank_top_k > self.rank_pool:
            raise ConfigError(
                f"--rank-top-k must be between 1 and --rank-pool {self.rank_pool}, "
                f"got {self.rank_top_k}"
            )
        from nas.gates import strategy_class, strategy_options

        strategy_options(self.strategy, self.strategy_option)  # one line for a bad option
        per_input = strategy_class(self.strategy).per_input
        if self.static and not per_input:
            raise ConfigError(
                f"--static turns per-input gates into a static pruning; --strategy "
                f"{self.strategy} is static already (drop --static)"
            )
        if not self.calibrate_gates and (self.static or not per_input):
            raise ConfigError(
                "--no-calibrate-gates keeps the trained gate thresholds of a per-input "
                "strategy's conditional network; "
                + (
                    "--static delivers a static network"
                    if self.static
                    else f"--strategy {self.strategy} has none"
                )
            )
        if per_input and not self.static and self.from_scratch:
            raise ConfigError(
                f"--from-scratch retrains a static network; --strategy {self.strategy} delivers "
                "a conditional network whose gates were learned with its weights (add --static)"
            )
        if self.arch_signal != "labels" and not strategy_class(self.strategy).bilevel:
            raise ConfigError(
                f"--arch-signal {self.arch_signal} is the loss of the architecture steps; "
                f"--strategy {self.strategy} trains its gates with the weights in one step on "
                "the labels (use --strategy width-gumbel, whose architecture has its own steps)"
            )
        self._check_cost(per_input)
        super().check()

    def _check_cost(self, per_input: bool) -> None:
        if self.cost != "latency":
            if self.target_latency is not None:
                raise ConfigError("--target-latency needs --cost latency")
            return
        if self.latency_table is None:
            raise ConfigError("--cost latency needs --latency-table TABLE")
        from nas.gates import strategy_class

        if per_input or strategy_class(self.strategy).own_budget:
            raise ConfigError(
                f"--cost latency prices static widths with the search's budget; --strategy "
                f"{self.strategy} has its own MAC activation loss (use width-gumbel or scp)"
            )

    def rank_config(self) -> RankConfig:
        """The GCN ranking options of ``--select predictor`` (the rest at their defaults)."""
        return RankConfig(
            samples=self.rank_samples, pool=self.rank_pool, top_k=self.rank_top_k, seed=self.seed
        )
