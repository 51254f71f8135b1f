"""The one train/evaluate loop of the toolkit.

:func:`train_model` trains full baselines and fine-tunes extracted networks (with knowledge
distillation from a teacher when one is given); the supernet search reuses its pieces:
:func:`kd_loss`, :func:`evaluate`, :func:`make_optimizer`, :func:`make_scheduler`.

Schedule: SGD (momentum, Nesterov, no weight decay on 1-D parameters such as BN scales and
biases), stepped per batch with a linear warm-up followed by a cosine decay to 0.

With ``out_dir`` every epoch rewrites ``summary.csv``; with ``checkpoint=True`` it also rewrites
``checkpoint.pt`` (model, optimizer, scheduler, records, RNG and loader states; readable with
``torch.load(..., weights_only=True)``). ``resume=True`` continues from that checkpoint, and on a
CPU the result is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import random
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from tqdm import tqdm

from nas.errors import ConfigError, DataError, WeightsError, first_line
from nas.io import atomic_torch_save, atomic_write_text, torch_load

if TYPE_CHECKING:
    from nas.data import DataBundle

__all__ = [
    "CHECKPOINT_NAME",
    "SUMMARY_COLUMNS",
    "SUMMARY_NAME",
    "EpochRecord",
    "EvalResult",
    "TrainConfig",
    "classification_loss",
    "evaluate",
    "kd_loss",
    "make_optimizer",
    "make_scheduler",
    "seed_everything",
    "train_model",
    "write_summary_csv",
]

CHECKPOINT_NAME = "checkpoint.pt"
SUMMARY_NAME = "summary.csv"
SUMMARY_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
_CHECKPOINT_FORMAT = 2
_POSTFIX_UPDATES_PER_EPOCH = 10


class Loader(Sized, Protocol):
    """What the loop needs from a data loader: ``len()`` and iteration over ``(x, y)`` batches."""

    def __iter__(self) -> Any: ...


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (see :meth:`validate` for the allowed values)."""

    epochs: int = 30
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: int = 0  # linear LR warm-up (per step) before the cosine schedule
    label_smoothing: float = 0.0
    kd_alpha: float = 0.9  # weight of the distillation term when a teacher is given
    kd_temperature: float = 4.0
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Raise :class:`ConfigError` (one line) for the first value that cannot be used."""
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1 (got {self.epochs})"),
            (self.lr > 0, f"lr must be > 0 (got {self.lr})"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1) (got {self.momentum})"),
            (not self.nesterov or self.momentum > 0, "nesterov needs momentum > 0"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0 (got {self.weight_decay})"),
            (
                0 <= self.warmup_epochs < self.epochs,
                f"warmup_epochs must be in [0, epochs={self.epochs}) (got {self.warmup_epochs})",
            ),
            (
                0 <= self.label_smoothing < 1,
                f"label_smoothing must be in [0, 1) (got {self.label_smoothing})",
            ),
            (0 <= self.kd_alpha <= 1, f"kd_alpha must be in [0, 1] (got {self.kd_alpha})"),
            (self.kd_temperature > 0, f"kd_temperature must be > 0 (got {self.kd_temperature})"),
        ]
        for ok, message in checks:
            if not ok:  # comparisons with NaN are False, so NaN is refused too
                raise ConfigError(message)
        _check_device(self.device)


def _check_device(name: str) -> None:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")


@dataclass
class EpochRecord:
    """One row of ``summary.csv``: ``lr`` is the rate at the epoch's first step."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_acc: float | None
    seconds: float


@dataclass
class EvalResult:
    """Accuracy (percent, 0..100) and mean cross-entropy of a model over ``count`` samples."""

    accuracy: float
    loss: float
    count: int


# -- seeding, losses -------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU, and CUDA if present)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def classification_loss(logits: Tensor, targets: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy, optionally with label smoothing."""
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    *,
    alpha: float,
    temperature: float,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Knowledge-distillation loss (Hinton et al., 2015; as in TAS).

    ``(1 - alpha) * CE(student, targets) + alpha * T^2 * KL(p_teacher^T || p_student^T)``, the
    KL divergence averaged over the batch. No gradient flows into ``teacher_logits``.
    """
    t = temperature
    hard = classification_loss(student_logits, targets, label_smoothing=label_smoothing)
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=1),
        F.log_softmax(teacher_logits.detach() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return (1.0 - alpha) * hard + alpha * t * t * soft


# -- optimizer, schedule ---------------------------------------------------------------------------
def make_optimizer(params: nn.Module | Iterable[Tensor], config: TrainConfig) -> torch.optim.SGD:
    """SGD with two parameter groups: weight decay on >= 2-D weights, none on 1-D parameters.

    1-D parameters are BN scales/shifts and conv/linear biases. Frozen parameters
    (``requires_grad=False``) are left out.
    """
    tensors = params.parameters() if isinstance(params, nn.Module) else params
    decay: list[Tensor] = []
    no_decay: list[Tensor] = []
    seen: set[int] = set()
    for p in tensors:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("nothing to train: the model has no parameters with requires_grad")
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


@dataclass
class _WarmupCosine:
    """LR factor at a step: linear warm-up to 1 over ``warmup`` steps, then cosine to 0."""

    warmup: int
    total: int

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> LRScheduler:
    """Per-step schedule: linear warm-up over ``warmup_epochs``, then cosine decay to 0.

    Call ``scheduler.step()`` after every optimizer step; after ``epochs * steps_per_epoch``
    steps the learning rate is 0.
    """
    if steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch must be >= 1 (got {steps_per_epoch})")
    factor = _WarmupCosine(config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch)
    return LambdaLR(optimizer, factor)


# -- evaluation ------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model: nn.Module, loader: Iterable[Any], *, device: str | torch.device | None = None
) -> EvalResult:
    """Accuracy and mean cross-entropy of ``model`` over ``loader``, in eval mode.

    Batches go to ``device`` (default: the device of the model's parameters). Each module's
    train/eval mode is restored afterwards.
    """
    dev = torch.device(device) if device is not None else _model_device(model)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        count = 0
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(dim=1) == y).sum()
            count += int(y.shape[0])
    finally:
        for m, was_training in modes:
            m.training = was_training
    if count == 0:
        raise DataError("cannot evaluate: the loader yielded no samples")
    return EvalResult(
        accuracy=100.0 * correct.item() / count, loss=loss_sum.item() / count, count=count
    )


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# -- summary ---------------------------------------------------------------------------------------
def write_summary_csv(path: str | Path, records: Iterable[EpochRecord]) -> None:
    """Write the records as CSV (columns :data:`SUMMARY_COLUMNS`; empty cell for None)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for r in records:
        row = asdict(r)
        writer.writerow(["" if row[c] is None else row[c] for c in SUMMARY_COLUMNS])
    atomic_write_text(path, buf.getvalue())


# -- training --------------------------------------------------------------------------------------
@dataclass
class _Loop:
    """Everything one optimisation step needs."""

    model: nn.Module
    teacher: nn.Module | None
    optimizer: torch.optim.SGD
    scheduler: LRScheduler
    config: TrainConfig
    device: torch.device

    def step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One SGD step; returns the (detached) batch loss and number of correct predictions."""
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(x)
        loss = self._loss(logits, x, y)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return loss.detach(), (logits.detach().argmax(dim=1) == y).sum()

    def _loss(self, logits: Tensor, x: Tensor, y: Tensor) -> Tensor:
        c = self.config
        if self.teacher is None:
            return classification_loss(logits, y, label_smoothing=c.label_smoothing)
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        return kd_loss(
            logits,
            teacher_logits,
            y,
            alpha=c.kd_alpha,
            temperature=c.kd_temperature,
            label_smoothing=c.label_smoothing,
        )


def train_model(
    model: nn.Module,
    train_loader: Loader,
    *,
    config: TrainConfig,
    val_loader: Iterable[Any] | None = None,
    teacher: nn.Module | None = None,
    out_dir: str | Path | None = None,
    checkpoint: bool = False,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
) -> list[EpochRecord]:
    """Train ``model`` in place for ``config.epochs`` epochs; return one record per epoch.

    With a ``teacher`` the loss is :func:`kd_loss`, else :func:`classification_loss`. See the
    module docstring for ``out_dir``, ``checkpoint`` and ``resume``. A non-finite training loss
    raises :class:`ConfigError`.
    """
    config.validate()
    ckpt_path = _checkpoint_path(out_dir, checkpoint=checkpoint, resume=resume)
    steps = len(train_loader)
    if steps < 1:
        raise DataError("the training loader is empty (no batches)")
    device = torch.device(config.device)
    model.to(device)
    if teacher is not None:
        teacher.to(device)
    optimizer = make_optimizer(model, config)
    loop = _Loop(
        model, teacher, optimizer, make_scheduler(optimizer, config, steps), config, device
    )
    records: list[EpochRecord] = []
    if ckpt_path is not None and resume and ckpt_path.is_file():
        records = _load_checkpoint(ckpt_path, loop, train_loader)
    else:
        seed_everything(config.seed)
    if out_dir is not None:
        write_summary_csv(Path(out_dir) / SUMMARY_NAME, records)  # also creates out_dir
    with (
        _teacher_in_eval_mode(teacher),
        tqdm(
            total=config.epochs * steps,
            initial=len(records) * steps,
            desc=desc,
            unit="step",
            file=sys.stderr,
            disable=not progress,
            dynamic_ncols=True,
        ) as bar,
    ):
        for epoch in range(len(records) + 1, config.epochs + 1):
            prev_val = records[-1].val_acc if records else None
            records.append(_run_epoch(loop, train_loader, val_loader, epoch, bar, prev_val))
            _save_outputs(out_dir, ckpt_path if checkpoint else None, loop, train_loader, records)
    return records


@contextlib.contextmanager
def _teacher_in_eval_mode(teacher: nn.Module | None) -> Iterator[None]:
    """The teacher runs in eval mode (its BN statistics stay as they are; its forward passes
    are under ``no_grad``); afterwards every module gets its own mode back, so a user's model
    used as a teacher is left as it was."""
    if teacher is None:
        yield
        return
    modes = [(m, m.training) for m in teacher.modules()]
    teacher.eval()
    try:
        yield
    finally:
        for m, was_training in modes:
            m.training = was_training


def _checkpoint_path(out_dir: str | Path | None, *, checkpoint: bool, resume: bool) -> Path | None:
    if out_dir is None:
        if checkpoint or resume:
            flag = "checkpoint" if checkpoint else "resume"
            raise ConfigError(f"{flag}=True needs an output directory (out_dir)")
        return None
    return Path(out_dir) / CHECKPOINT_NAME


def _run_epoch(
    loop: _Loop,
    train_loader: Loader,
    val_loader: Iterable[Any] | None,
    epoch: int,
    bar: tqdm,
    prev_val: float | None,
) -> EpochRecord:
    start = time.perf_counter()
    lr = float(loop.optimizer.param_groups[0]["lr"])
    train_loss, train_acc = _train_epoch(loop, train_loader, epoch, bar, prev_val)
    val = evaluate(loop.model, val_loader, device=loop.device) if val_loader is not None else None
    record = EpochRecord(
        epoch=epoch,
        lr=lr,
        train_loss=train_loss,
        train_acc=train_acc,
        val_loss=val.loss if val else None,
        val_acc=val.accuracy if val else None,
        seconds=time.perf_counter() - start,
    )
    _show(bar, epoch, loop.config.epochs, train_loss, train_acc, record.val_acc)
    return record


def _train_epoch(
    loop: _Loop, loader: Loader, epoch: int, bar: tqdm, val_acc: float | None
) -> tuple[float, float]:
    """One pass over ``loader``; returns mean loss and accuracy (percent).

    The bar shows the running loss/accuracy and ``val_acc``, the previous epoch's.
    """
    loop.model.train()
    every = max(1, len(loader) // _POSTFIX_UPDATES_PER_EPOCH)
    loss_sum = torch.zeros((), device=loop.device)
    correct = torch.zeros((), dtype=torch.long, device=loop.device)
    seen = 0
    for i, (x, y) in enumerate(loader, start=1):
        x, y = x.to(loop.device, non_blocking=True), y.to(loop.device, non_blocking=True)
        loss, hits = loop.step(x, y)
        n = int(y.shape[0])
        loss_sum += loss * n
        correct += hits
        seen += n
        bar.update(1)
        if i % every == 0:  # syncs with the device only a few times per epoch
            mean = _finite_mean(loss_sum, seen, epoch)
            _show(bar, epoch, loop.config.epochs, mean, 100.0 * correct.item() / seen, val_acc)
    if seen == 0:
        raise DataError(f"the training loader yielded no samples in epoch {epoch}")
    return _finite_mean(loss_sum, seen, epoch), 100.0 * correct.item() / seen


def _finite_mean(loss_sum: Tensor, count: int, epoch: int) -> float:
    mean = loss_sum.item() / count
    if not math.isfinite(mean):
        raise ConfigError(f"training diverged (loss is nan/inf) at epoch {epoch}; lower --lr")
    return mean


def _show(
    bar: tqdm, epoch: int, epochs: int, loss: float, acc: float, val_acc: float | None
) -> None:
    bar.set_postfix(
        epoch=f"{epoch}/{epochs}",
        loss=f"{loss:.4f}",
        acc=f"{acc:.1f}",
        val_acc="-" if val_acc is None else f"{val_acc:.2f}",
        refresh=False,
    )


def _save_outputs(
    out_dir: str | Path | None,
    ckpt_path: Path | None,
    loop: _Loop,
    train_loader: Loader,
    records: list[EpochRecord],
) -> None:
    if out_dir is None:
        return
    write_summary_csv(Path(out_dir) / SUMMARY_NAME, records)
    if ckpt_path is not None:
        atomic_torch_save(_checkpoint_state(loop, train_loader, records), ckpt_path)


# -- checkpoints -----------------------------------------------------------------------------------
def _checkpoint_state(loop: _Loop, loader: Loader, records: list[EpochRecord]) -> dict[str, Any]:
    """Everything needed to continue bit-identically; only weights_only-loadable types."""
    state: dict[str, Any] = {
        "format": _CHECKPOINT_FORMAT,
        "epoch": len(records),
        "config": asdict(loop.config),
        "model": loop.model.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "records": [asdict(r) for r in records],
        "rng": rng_state(loop.device),
        "loader": loader_state(loader),
    }
    return state


def rng_state(device: torch.device) -> dict[str, Any]:
    """Python, NumPy and torch RNG states in a form ``torch.load(weights_only=True)`` reads."""
    np_state = cast(tuple[Any, ...], np.random.get_state())
    return {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else None,
    }


def loader_state(loader: object) -> dict[str, Any]:
    """The shuffling state of a loader (ours, or a torch DataLoader with its own generator)."""
    if _has_state(loader):
        return {"loader": loader.state_dict(), "generator": None}  # type: ignore[attr-defined]
    gen = _loader_generator(loader)
    return {"loader": None, "generator": gen.get_state() if gen is not None else None}


def restore_loader(loader: object, state: dict[str, Any]) -> None:
    """Undo :func:`loader_state`."""
    if state["loader"] is not None and _has_state(loader):
        loader.load_state_dict(state["loader"])  # type: ignore[attr-defined]
    elif state["generator"] is not None and (gen := _loader_generator(loader)):
        gen.set_state(state["generator"])


def loader_states(data: DataBundle) -> dict[str, dict[str, Any]]:
    """The shuffling state of a bundle's training and validation loaders."""
    loaders = {"train": data.train, "val": data.val}
    return {k: loader_state(v) for k, v in loaders.items() if v is not None}


def restore_loaders(data: DataBundle, states: dict[str, dict[str, Any]]) -> None:
    """Undo :func:`loader_states`."""
    restore_loader(data.train, states["train"])
    if data.val is not None and "val" in states:
        restore_loader(data.val, states["val"])


def _has_state(loader: object) -> bool:
    return callable(getattr(loader, "state_dict", None)) and callable(
        getattr(loader, "load_state_dict", None)
    )


def _loader_generator(loader: object) -> torch.Generator | None:
    """The generator a torch DataLoader (or its sampler) shuffles with, if it has its own."""
    for owner in (loader, getattr(loader, "sampler", None)):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator):
            return gen
    return None


def _load_checkpoint(path: Path, loop: _Loop, loader: Loader) -> list[EpochRecord]:
    """Restore model, optimizer, scheduler, RNG and loader states; return the stored records."""
    state = _read_checkpoint(path)
    _check_same_config(path, state["config"], loop.config)
    try:
        loop.model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise WeightsError(
            f"checkpoint {path} does not match the model: {first_line(exc)}"
        ) from None
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"], loop.device)
    restore_loader(loader, state["loader"])
    return [EpochRecord(**r) for r in state["records"]]


def _read_checkpoint(path: Path) -> dict[str, Any]:
    return read_checkpoint(path, _CHECKPOINT_FORMAT, "training")


def read_checkpoint(path: Path, fmt: object, kind: str) -> dict[str, Any]:
    """Load a checkpoint (``weights_only=True``) whose ``format`` entry is ``fmt``."""
    state = torch_load(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise WeightsError(f"{path} is not a {kind} checkpoint of this toolkit")
    return state


def _check_same_config(path: Path, stored: dict[str, Any], config: TrainConfig) -> None:
    """Resuming under other hyper-parameters would silently change the run: refuse it."""
    for f in fields(config):
        if f.name != "device" and stored.get(f.name) != getattr(config, f.name):
            raise ConfigError(
                f"cannot resume from {path}: it was written with {f.name}={stored.get(f.name)!r}, "
                f"not {getattr(config, f.name)!r} (use a new output directory)"
            )


def restore_rng(rng: dict[str, Any], device: torch.device) -> None:
    """Undo :func:`rng_state`."""
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    cuda = rng["cuda"]
    if cuda is not None and device.type == "cuda" and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
