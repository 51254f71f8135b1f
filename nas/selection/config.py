"""Options of predictor-based selection and of the ranking evidence (:class:`RankConfig`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from nas.errors import ConfigError
from nas.options import MAX_EPOCHS, Options, option
from predictors import PredictorConfig

__all__ = ["MIN_HOLDOUT", "MIN_SAMPLES", "SAMPLING", "RankConfig"]

SAMPLING = ("uniform", "band")
MIN_SAMPLES = 10  # fewest scored sub-networks the predictor is fitted on
MIN_HOLDOUT = 3  # fewest held-out networks a rank correlation is computed on


@dataclass
class RankConfig(Options):
    """Knobs of predictor-based selection and of the ranking evidence (``nas rank``)."""

    group: ClassVar[str] = "ranking"

    samples: int = option(
        200, "sub-networks scored with the supernet to fit the GCN", ge=MIN_SAMPLES
    )
    sampling: str = option(
        "band",
        "sample the scored sub-networks uniformly over the width choices or in a MAC band "
        "around the budget",
        choices=SAMPLING,
    )
    band: float = option(
        0.25,
        "--sampling band: networks scored to fit the GCN within target x (1 +- band) MACs",
        gt=0,
        lt=1,
    )
    pool: int = option(
        10_000, "candidates ranked, MACs within the search's tolerance under the budget", ge=1
    )
    top_k: int = option(5, "best predicted candidates fine-tuned briefly", ge=1)
    topk_epochs: int = option(
        3, "epochs of the brief fine-tune of each of them", ge=0, le=MAX_EPOCHS
    )
    holdout: int = option(
        24,
        f"held-out sub-networks of the pool band, each fine-tuned as the search delivers its "
        f"network (twice, two seeds), for the evidence (0: skip, else >= {MIN_HOLDOUT})",
        ge=0,
    )
    holdout_epochs: int | None = option(
        None, "their fine-tuning epochs (default: the search's --finetune-epochs)", ge=1
    )
    holdout_lr: float | None = option(
        None, "their fine-tuning learning rate (default: the search's --finetune-lr)", gt=0
    )
    predictor_loss: str = option(
        PredictorConfig.loss,
        "GCN training loss: pairwise ranking (rank) or regression (mse)",
        flag="--loss",
        choices=("rank", "mse"),
    )
    predictor_epochs: int = option(
        PredictorConfig.epochs, "GCN training epochs", ge=1, le=MAX_EPOCHS
    )
    predictor_hidden: int = option(PredictorConfig.hidden, "GCN hidden features", ge=1)
    predictor_layers: int = option(PredictorConfig.layers, "GCN layers", ge=2, le=4)
    predictor_dropout: float = option(PredictorConfig.dropout, "GCN dropout", ge=0, lt=1)
    predictor_lr: float = option(PredictorConfig.lr, "GCN Adam learning rate", gt=0)
    predictor_weight_decay: float = option(PredictorConfig.weight_decay, "GCN weight decay", ge=0)
    predictor_batch_size: int = option(PredictorConfig.batch_size, "GCN batch size", ge=2)
    seed: int = option(0, "seed of sampling and of the predictor")

    def check(self) -> None:
        if self.top_k > self.pool:
            raise ConfigError(
                f"--top-k must be between 1 and the pool size {self.pool}, got {self.top_k}"
            )
        if 0 < self.holdout < MIN_HOLDOUT:
            raise ConfigError(
                f"--holdout must be 0 (off) or at least {MIN_HOLDOUT}: rank correlations of "
                f"fewer networks are undefined or meaningless, got {self.holdout}"
            )

    def predictor(self) -> PredictorConfig:
        """The GCN's own configuration."""
        return PredictorConfig(
            hidden=self.predictor_hidden,
            layers=self.predictor_layers,
            dropout=self.predictor_dropout,
            loss=self.predictor_loss,
            epochs=self.predictor_epochs,
            lr=self.predictor_lr,
            weight_decay=self.predictor_weight_decay,
            batch_size=self.predictor_batch_size,
            seed=self.seed,
        ).validate()
