"""Options of one training run (:class:`TrainConfig`) and of distillation (:class:`Distillation`);
the threads torch uses (:class:`ThreadOptions`, :func:`torch_threads`).

Torch-free at import, so the command line's help stays fast.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from nas.errors import ConfigError
from nas.options import AFTER_SEARCH, LOCAL, MAX_EPOCHS, Options, option

KD_FEATURES = ("none", "kernel")  # feature distillation beside the logits' (nas.engine.features)

__all__ = [
    "KD_FEATURES",
    "Distillation",
    "ParallelOptions",
    "ThreadOptions",
    "TrainConfig",
    "check_device",
    "torch_threads",
    "usable_cores",
]


@dataclass
class TrainConfig(Options):
    """Hyper-parameters of one training run (SGD with a per-step warm-up + cosine schedule)."""

    group: ClassVar[str] = "training"

    epochs: int = option(30, "training epochs", ge=1, le=MAX_EPOCHS)
    lr: float = option(0.1, "SGD learning rate", gt=0)
    momentum: float = option(0.9, "SGD momentum", ge=0, lt=1)
    nesterov: bool = option(True, "plain momentum instead of Nesterov's")
    weight_decay: float = option(5e-4, "weight decay (not on BN scales and biases)", ge=0)
    warmup_epochs: int = option(
        0, "linear LR warm-up epochs before the cosine decay", ge=0, le=MAX_EPOCHS
    )
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy", ge=0, lt=1)
    bn_sparsity: float = option(
        0.0,
        "L1 penalty on the BN scales (network slimming: adds LAMBDA * sign(gamma) to their "
        "gradients; try 1e-5 before pruning with --criterion bn)",
        ge=0,
        metavar="LAMBDA",
    )
    seed: int = option(0, "seed for everything")
    device: str = option("cpu", "cpu, cuda, cuda:1, mps...")

    def check(self) -> None:
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov needs momentum > 0 (pass --no-nesterov)")
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(
                f"--warmup-epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs}"
            )
        check_device(self.device)


@dataclass
class Distillation(Options):
    """Knowledge distillation from a teacher (Hinton et al. 2015; as in TAS):
    ``(1 - kd_alpha) * CE + kd_alpha * T^2 * KL(teacher/T || student/T)``, plus with
    ``kd_features`` a loss on the stages' feature maps (:mod:`nas.engine.features`)."""

    group: ClassVar[str] = "distillation"

    kd_alpha: float = option(
        0.9,
        "weight of distillation from the full network (0 = none)",
        ge=0,
        le=1,
        tags=(AFTER_SEARCH,),
    )
    kd_temperature: float = option(4.0, "distillation temperature", gt=0, tags=(AFTER_SEARCH,))
    kd_features: str = option(
        "none",
        "also distil the features at the end of every stage: kernel compares the student's and "
        "the full network's maps through a Gaussian kernel over spatial positions (any channel "
        "counts; PKKD), its weight ramped up over the first half of the steps",
        choices=KD_FEATURES,
        tags=(AFTER_SEARCH,),
    )
    kd_feature_weight: float = option(
        50.0,
        "--kd-features kernel: weight of the feature loss once ramped up (50 makes it about a "
        "fifth of the logit distillation when a pruned ResNet-20 starts fine-tuning)",
        ge=0,
        tags=(AFTER_SEARCH,),
    )

    def check(self) -> None:
        if self.kd_features != "none" and self.kd_alpha == 0:
            raise ConfigError(
                f"--kd-features {self.kd_features} adds to the distillation from the full "
                "network, which --kd-alpha 0 turns off (give --kd-alpha > 0)"
            )


def check_device(name: str) -> None:
    """A device name torch understands and this machine has; else a one-line error."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")


@dataclass
class ThreadOptions(Options):
    """How many threads torch uses. Results can depend on it (floating-point sums in another
    order), so a run records the number it used and ``--resume`` and ``--config`` keep it."""

    group: ClassVar[str] = "run"

    threads: int | None = option(
        None,
        "torch threads (default: the cores this process may use, divided among the worker "
        "processes it starts); recorded in args.yaml, kept by --resume and --config: results "
        "depend on it",
        ge=1,
        le=1024,
        tags=(LOCAL,),
    )

    def thread_count(self, workers: int = 1) -> int:
        """``threads``, else the cores this process may use (:func:`usable_cores`) shared among
        ``workers`` processes."""
        return self.threads or max(1, usable_cores() // max(1, workers))


@dataclass
class ParallelOptions(Options):
    """How the processes of a torchrun run share the work (:mod:`nas.engine.distributed`)."""

    group: ClassVar[str] = "run"

    sync_bn: bool = option(
        False,
        "under torchrun: BatchNorm in training normalises with the statistics of the global "
        "batch of all processes, as one process would (default: each process's share)",
    )


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, as ``taskset`` or a container
    sets it; ``os.cpu_count()`` where the platform has no masks)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch uses ``count`` threads for the duration (the caller's count is restored)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
