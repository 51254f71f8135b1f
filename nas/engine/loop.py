"""The one train loop of the toolkit: :func:`train_model`.

It trains full baselines and fine-tunes extracted networks (with knowledge distillation from a
teacher when one is given); the supernet search reuses its pieces (losses, optimiser, schedule,
evaluation, state).

Schedule: SGD (momentum, Nesterov, no weight decay on 1-D parameters such as BN scales and
biases), stepped per batch with a linear warm-up followed by a cosine decay to 0.

With ``out_dir`` every epoch rewrites ``summary.csv``; with ``checkpoint=True`` it also rewrites
``checkpoint.pt`` (model, optimizer, scheduler, records, RNG and loader states; readable with
``torch.load(..., weights_only=True)``). ``resume=True`` continues from that checkpoint, and on a
CPU the result is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from nas.engine.config import Distillation, TrainConfig
from nas.engine.distributed import batches, reduce_step, shard, share, synced_batch_norm
from nas.engine.evaluation import evaluate
from nas.engine.features import FeatureTap, kernel_loss, ramp, stage_ends
from nas.engine.losses import classification_loss, kd_loss
from nas.engine.optim import make_optimizer, make_scheduler
from nas.engine.state import (
    has_checkpoint,
    loader_state,
    read_checkpoint,
    restore_loader,
    restore_rng,
    rng_state,
    save_checkpoint,
    seed_everything,
)
from nas.engine.summary import SUMMARY_NAME, EpochRecord, write_summary_csv
from nas.errors import ConfigError, DataError, WeightsError, first_line
from nas.io import load_weights

__all__ = ["CHECKPOINT_NAME", "Loader", "train_model"]

CHECKPOINT_NAME = "checkpoint.pt"
_CHECKPOINT_FORMAT = 3
_POSTFIX_UPDATES_PER_EPOCH = 10


class Loader(Sized, Protocol):
    """What the loop needs from a data loader: ``len()`` and iteration over ``(x, y)`` batches."""

    def __iter__(self) -> Any: ...


# -- training --------------------------------------------------------------------------------------
@torch.no_grad()
def sparsify_bn(model: nn.Module, strength: float) -> None:
    """The sub-gradient of ``strength * sum |gamma|`` over the BN scales, added to their
    gradients (network slimming's sparsity training)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and m.weight is not None and m.weight.grad is not None:
            m.weight.grad.add_(torch.sign(m.weight), alpha=strength)


class FeatureDistillation:
    """The student's and teacher's stage-end maps of every step (:mod:`nas.engine.features`):
    the stage ends are found on the first batch, then both networks are tapped until
    :meth:`close`."""

    def __init__(self, student: nn.Module, teacher: nn.Module) -> None:
        self.student, self.teacher = student, teacher
        self.taps: tuple[FeatureTap, FeatureTap] | None = None

    def attach(self, x: Tensor) -> None:
        if self.taps is None:
            names = stage_ends(self.teacher, x)
            if names != stage_ends(self.student, x):
                raise ConfigError(
                    "--kd-features kernel: the student's stages do not match the teacher's "
                    "(another architecture?)"
                )
            self.taps = (FeatureTap(self.student, names), FeatureTap(self.teacher, names))

    def loss(self) -> Tensor:
        assert self.taps is not None
        return kernel_loss(self.taps[0].outputs, self.taps[1].outputs)

    def close(self) -> None:
        if self.taps is not None:
            for tap in self.taps:
                tap.close()
            self.taps = None


@dataclass
class _Loop:
    """Everything one optimisation step needs."""

    model: nn.Module
    teacher: nn.Module | None
    optimizer: torch.optim.SGD
    scheduler: LRScheduler
    config: TrainConfig
    device: torch.device
    distill: Distillation
    total_steps: int = 1
    features: FeatureDistillation | None = None

    def step(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One SGD step; returns the (detached) batch loss and number of correct predictions.
        In a run of several processes, on this rank's share of the batch, with the gradients
        and both results of the whole batch (:mod:`nas.engine.distributed`)."""
        self.optimizer.zero_grad(set_to_none=True)
        x, y, n = shard(x, y)
        m = int(y.shape[0])
        if self.features is not None:
            self.features.attach(x)
        logits = self.model(x)
        loss = self._loss(logits, x, y)
        (loss * share(m, n)).backward()
        hits = (logits.detach().argmax(dim=1) == y).sum()
        total = reduce_step(self.model.parameters(), loss.detach() * m, hits)
        if self.config.bn_sparsity > 0:
            sparsify_bn(self.model, self.config.bn_sparsity)
        self.optimizer.step()
        self.scheduler.step()
        return (total[0] / n).to(loss.dtype), total[1].round().long()

    def _loss(self, logits: Tensor, x: Tensor, y: Tensor) -> Tensor:
        c, d = self.config, self.distill
        if self.teacher is None:
            return classification_loss(logits, y, label_smoothing=c.label_smoothing)
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        loss = kd_loss(
            logits,
            teacher_logits,
            y,
            alpha=d.kd_alpha,
            temperature=d.kd_temperature,
            label_smoothing=c.label_smoothing,
        )
        if self.features is not None:
            weight = ramp(int(self.scheduler.last_epoch), self.total_steps, d.kd_feature_weight)
            loss = loss + weight * self.features.loss()
        return loss


def train_model(
    model: nn.Module,
    train_loader: Loader,
    *,
    config: TrainConfig,
    val_loader: Iterable[Any] | None = None,
    teacher: nn.Module | None = None,
    distill: Distillation | None = None,
    out_dir: str | Path | None = None,
    checkpoint: bool = False,
    resume: bool = False,
    progress: bool = True,
    desc: str = "train",
) -> list[EpochRecord]:
    """Train ``model`` in place for ``config.epochs`` epochs; return one record per epoch.

    With a ``teacher`` the loss is :func:`kd_loss` with ``distill`` (default
    :class:`Distillation()`), else :func:`classification_loss`. See the
    module docstring for ``out_dir``, ``checkpoint`` and ``resume``. A non-finite training loss
    raises :class:`ConfigError`.
    """
    config.validate()
    distill = (distill or Distillation()).validate()
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
        model,
        teacher,
        optimizer,
        make_scheduler(optimizer, config, steps),
        config,
        device,
        distill,
        config.epochs * steps,
        FeatureDistillation(model, teacher)
        if teacher is not None and distill.kd_features == "kernel"
        else None,
    )
    records: list[EpochRecord] = []
    if ckpt_path is not None and resume and has_checkpoint(ckpt_path):
        records = _load_checkpoint(ckpt_path, loop, train_loader)
    else:
        seed_everything(config.seed)
    if out_dir is not None:
        write_summary_csv(Path(out_dir) / SUMMARY_NAME, records)  # also creates out_dir
    with (
        contextlib.closing(loop.features) if loop.features else contextlib.nullcontext(),
        _teacher_in_eval_mode(teacher),
        synced_batch_norm(),
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
    for i, (x, y) in enumerate(batches(loader), start=1):
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
        save_checkpoint(_checkpoint_state(loop, train_loader, records), ckpt_path)


# -- checkpoints -----------------------------------------------------------------------------------
def _checkpoint_state(loop: _Loop, loader: Loader, records: list[EpochRecord]) -> dict[str, Any]:
    """Everything needed to continue bit-identically; only weights_only-loadable types."""
    state: dict[str, Any] = {
        "format": _CHECKPOINT_FORMAT,
        "epoch": len(records),
        "config": asdict(loop.config) | asdict(loop.distill),
        "model": loop.model.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "records": [asdict(r) for r in records],
        "rng": rng_state(loop.device),
        "loader": loader_state(loader),
    }
    return state


def _load_checkpoint(path: Path, loop: _Loop, loader: Loader) -> list[EpochRecord]:
    """Restore model, optimizer, scheduler, RNG and loader states; return the stored records."""
    state = read_checkpoint(path, _CHECKPOINT_FORMAT, "training")
    _check_same_config(path, state["config"], asdict(loop.config) | asdict(loop.distill))
    try:
        load_weights(loop.model, state["model"])
    except RuntimeError as exc:
        raise WeightsError(
            f"checkpoint {path} does not match the model: {first_line(exc)}"
        ) from None
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.scheduler.load_state_dict(state["scheduler"])
    restore_rng(state["rng"], loop.device)
    restore_loader(loader, state["loader"])
    return [EpochRecord(**r) for r in state["records"]]


def _check_same_config(path: Path, stored: dict[str, Any], config: dict[str, Any]) -> None:
    """Resuming under other hyper-parameters would silently change the run: refuse it."""
    for name, value in config.items():
        if name != "device" and stored.get(name) != value:
            raise ConfigError(
                f"cannot resume from {path}: it was written with {name}={stored.get(name)!r}, "
                f"not {value!r} (use a new output directory)"
            )
