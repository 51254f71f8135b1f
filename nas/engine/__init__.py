"""The training engine: one train loop (:func:`train_model`) and what it is made of.

Modules: ``config`` (:class:`TrainConfig`, :class:`Distillation`, the threads torch uses:
:class:`ThreadOptions`, :func:`torch_threads`), ``losses`` (cross-entropy, distillation),
``optim`` (SGD groups, warm-up + cosine schedule), ``evaluation``, ``batchnorm``
(:func:`recalibrate_bn`: BatchNorm statistics recomputed for a network cut from a larger one),
``state`` (seeds, RNG and loader states, checkpoint reading), ``summary`` (``summary.csv``),
``loop``, and ``finetuning`` (the budget, fine-tuning and ``--compare`` options and run that
every method delivering a smaller network shares: the search and the criteria pruning).
"""

from nas.engine.batchnorm import DEFAULT_CALIBRATION_IMAGES, first_images, recalibrate_bn
from nas.engine.config import Distillation, ThreadOptions, TrainConfig, torch_threads
from nas.engine.evaluation import EvalResult, evaluate
from nas.engine.finetuning import (
    FinetuneConfig,
    default_reference,
    finetune,
    finetune_and_compare,
    uniform_staircase,
    uniform_twin,
)
from nas.engine.loop import CHECKPOINT_NAME, train_model
from nas.engine.losses import classification_loss, kd_loss
from nas.engine.optim import make_optimizer, make_scheduler
from nas.engine.state import (
    has_checkpoint,
    loader_state,
    loader_states,
    read_checkpoint,
    restore_loader,
    restore_loaders,
    restore_rng,
    rng_state,
    save_checkpoint,
    seed_everything,
)
from nas.engine.summary import (
    SUMMARY_COLUMNS,
    SUMMARY_NAME,
    EpochRecord,
    read_summary,
    write_summary_csv,
)

__all__ = [
    "CHECKPOINT_NAME",
    "DEFAULT_CALIBRATION_IMAGES",
    "SUMMARY_COLUMNS",
    "SUMMARY_NAME",
    "Distillation",
    "EpochRecord",
    "EvalResult",
    "FinetuneConfig",
    "ThreadOptions",
    "TrainConfig",
    "classification_loss",
    "default_reference",
    "evaluate",
    "finetune",
    "finetune_and_compare",
    "first_images",
    "has_checkpoint",
    "kd_loss",
    "loader_state",
    "loader_states",
    "make_optimizer",
    "make_scheduler",
    "read_checkpoint",
    "read_summary",
    "recalibrate_bn",
    "restore_loader",
    "restore_loaders",
    "restore_rng",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "torch_threads",
    "train_model",
    "uniform_staircase",
    "uniform_twin",
    "write_summary_csv",
]
