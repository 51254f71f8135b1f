"""Several processes, one run: data parallelism under ``torchrun``.

``torchrun --nproc-per-node N --no-python nas train ...`` (or ``nas search``, ``nas prune``,
``nas transfer``) starts N copies of the command; each finds its place from the environment
torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, the rendezvous address) and joins the
process group (:func:`start`: ``gloo`` on the CPU, ``nccl`` on GPUs, each rank on the GPU of its
local rank).

**Steps.** Every rank iterates the same global batches (same seed, order and augmentation: the
loaders are those of a 1-process run) and computes on its own contiguous share of each
(:func:`shard`; a loader that reads images from disk decodes only that share,
:func:`batches`), and its loss is weighted by its share of the batch (:func:`share`) before
the backward pass. Then the gradients of every parameter being stepped (the network's weights, and
the architecture parameters of a search, which live outside the network module, so a plain
``DistributedDataParallel`` wrapper would not see them) are summed across ranks in one
all-reduce (:func:`reduce_step`), with the batch's loss and hits: one step equals the 1-process
step on the global batch, to float summation order, when the loss is a mean over the batch. The
weight goes on the loss, not on the gradients afterwards: with ``--sync-bn`` a rank's gradient
also carries the other ranks' losses (through the shared BatchNorm statistics), which must
enter with their own shares when the batch does not split evenly (its last one). Terms
computed over the batch itself (BatchNorm statistics; the activation losses of per-input gates)
see the rank's share only, unless ``--sync-bn`` makes every BatchNorm in training mode
normalise with the mean and variance of the global batch (differentiable through the
all-reduce).

**Files.** Rank 0 alone writes (``search_spaces.files`` and :mod:`nas.rundir` do nothing on the
other ranks), prints and shows progress. Every rank reads the same inputs and, with
``--resume``, the same checkpoint, which holds the global state (weights, optimisers, loader and
random states): a run resumes under the same or another number of processes.

**Failures.** A rank that stops (an error, a kill, a lost machine) breaks the others' next
collective, or torchrun stops them with SIGTERM: each ends with one ``error:`` line and exit
code 2 (:class:`RankStopped`), and the last complete checkpoint stays as it was.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any, cast

import torch
from torch import Tensor

from nas.data.loaders import share_bounds

__all__ = [
    "RankStopped",
    "active",
    "batches",
    "rank",
    "reduce_step",
    "shard",
    "share",
    "start",
    "stop",
    "synced_batch_norm",
    "syncs_bn",
    "world_size",
]

_GROUP: dict[str, Any] = {"active": False, "sync_bn": False}
TIMEOUT = datetime.timedelta(minutes=30)  # a collective waits this long for a silent peer


class RankStopped(BaseException):
    """This process of a several-process run must stop: another one stopped, or torchrun
    asked it to. Not a :class:`~nas.errors.NasError`: nothing the run wrote is removed."""


def launched() -> bool:
    """Started by torchrun (or any launcher setting ``WORLD_SIZE``) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def active() -> bool:
    """A process group of several ranks is up."""
    return bool(_GROUP["active"])


def syncs_bn() -> bool:
    """Under a group: ``--sync-bn`` is on."""
    return active() and bool(_GROUP["sync_bn"])


def world_size() -> int:
    return int(torch.distributed.get_world_size()) if active() else 1


def rank() -> int:
    return int(torch.distributed.get_rank()) if active() else 0


def start(device: str, *, sync_bn: bool = False) -> None:
    """Join the process group torchrun described in the environment (nothing when not
    launched as several ranks): ``nccl`` for a CUDA ``device`` (this rank on the GPU of its
    local rank), else ``gloo``. SIGTERM (torchrun stopping the others when one fails) becomes
    :class:`RankStopped`."""
    if not launched() or active():
        return
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    _GROUP.update(active=True, sync_bn=sync_bn)
    signal.signal(signal.SIGTERM, _stopped_by_signal)


def stop(*, clean: bool = True) -> None:
    """Leave the process group (the end of the command). After a ``clean`` end every rank first
    waits for the others at a barrier: a rank that tore its connections down while a peer was
    still finishing its last collective or writing the run's files could make gloo abort the
    process on either side (SIGABRT from its background thread; seen once in CI). After an
    error no rank waits: the others stop at their next collective or by torchrun's SIGTERM."""
    if active():
        with contextlib.suppress(Exception):
            if clean:
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        _GROUP.update(active=False, sync_bn=False)


def _stopping() -> None:
    """This rank is ending after a failure: a later SIGTERM (torchrun stopping the ranks it
    has not yet seen end) must not interrupt the one error line and the exit."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _stopped_by_signal(signum: int, frame: FrameType | None) -> None:
    _stopping()
    raise RankStopped(
        f"rank {os.environ.get('RANK', '?')} stopped: another process of this run ended (its "
        "error says why); the last complete checkpoint is kept"
    )


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """A collective whose failure (a peer gone) stops this rank with :class:`RankStopped`."""
    try:
        yield
    except RankStopped:
        raise
    except Exception as exc:  # gloo and nccl raise RuntimeError subclasses on a lost peer
        _stopping()
        raise RankStopped(
            f"rank {rank()} stopped: another process of this run is gone ({what} failed: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}); "
            "the last complete checkpoint is kept"
        ) from None


def shard(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, int]:
    """This rank's contiguous share of a global batch, and the global batch size. A batch from
    :func:`batches` of a loader that decodes each rank's share only holds this rank's images
    already (and every label)."""
    n = int(y.shape[0])
    if not active():
        return x, y, n
    lo, hi = share_bounds(n, rank(), world_size())
    if int(x.shape[0]) == n:
        return x[lo:hi], y[lo:hi], n
    if int(x.shape[0]) != hi - lo:
        raise ValueError(f"a batch of {n} labels with {x.shape[0]} images, not {hi - lo}")
    return x, y[lo:hi], n


def batches(loader: Iterable[Any]) -> Iterator[Any]:
    """An epoch of ``loader`` for training steps, which :func:`shard` each batch: from a loader
    that can (:class:`~nas.data.loaders.SampleLoader`), under a group, batches that hold the
    images of this rank's share only, so the ranks decode each image once between them. Under a
    group, a batch with fewer images than ranks (an epoch's last) is skipped by every rank: some
    rank's share would be empty. The same batches as ``iter(loader)`` otherwise; where whole
    batches are read (evaluation, BatchNorm recalibration, scoring), iterate the loader
    itself."""
    if not active():
        return iter(loader)
    shares = getattr(loader, "shares", None)
    epoch = shares(rank(), world_size()) if callable(shares) else iter(loader)
    ranks = world_size()
    return (batch for batch in cast(Iterator[Any], epoch) if int(batch[1].shape[0]) >= ranks)


def share(n_local: int, n_global: int) -> float:
    """The weight of this rank's mean loss in the global batch's mean: ``n_local / n_global``
    (1 without a group, so a 1-process step is exactly what it was)."""
    return n_local / n_global if active() else 1.0


def reduce_step(params: Iterable[Tensor], *stats: Tensor) -> Tensor:
    """Sum, across ranks, the gradients of ``params`` in place: after every rank has
    back-propagated its mean loss times its :func:`share`, every rank holds the gradient of the
    global batch's mean loss. ``stats`` (scalars, say the loss times ``n_local`` and the hits)
    are summed in the same all-reduce and returned, stacked. Without a group, the stats
    stacked."""
    if not stats:
        stats = (torch.zeros(()),)
    grads = [p.grad for p in params if p.grad is not None]
    device = grads[0].device if grads else stats[0].device
    if not active():
        return torch.stack([s.detach().double().to(device) for s in stats])
    flat = torch.cat(
        [g.reshape(-1).double() for g in grads]
        + [torch.stack([s.detach().double().to(device) for s in stats])]
    )
    with _collective("the gradient all-reduce"):
        torch.distributed.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
    return flat[offset:]


# -- synchronised BatchNorm -----------------------------------------------------------------------
_batch_norm = torch.nn.functional.batch_norm


def _synced_batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """``F.batch_norm`` whose batch statistics are those of the global batch of all ranks
    (in place of ``torch.nn.functional.batch_norm``, which every BatchNorm module calls, while
    :func:`synced_batch_norm` holds)."""
    if not training:
        return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    dims = [d for d in range(input.dim()) if d != 1]
    wide = input.double()  # E[x^2] - E[x]^2 in float64: no cancellation
    count = torch.tensor([input.numel() / input.shape[1]], dtype=wide.dtype, device=input.device)
    total = _AllSum.apply(torch.cat([wide.sum(dims), (wide * wide).sum(dims), count]))
    c = input.shape[1]
    n = total[-1]
    mean = (total[:c] / n).to(input.dtype)
    var = (total[c : 2 * c] / n - (total[:c] / n) ** 2).clamp_min(0).to(input.dtype)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            unbiased = var.detach() * (n / (n - 1).clamp_min(1))
            running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)
    shape = [1, c] + [1] * (input.dim() - 2)
    out = (input - mean.view(shape)) * torch.rsqrt(var + eps).view(shape)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out


@contextlib.contextmanager
def synced_batch_norm() -> Iterator[None]:
    """With ``--sync-bn`` in a run of several processes, every BatchNorm in training mode
    normalises with the statistics of the global batch for the duration (the training epochs;
    not while a model is exported, which must see torch's own function)."""
    if not syncs_bn():
        yield
        return
    torch.nn.functional.batch_norm = _synced_batch_norm
    try:
        yield
    finally:
        torch.nn.functional.batch_norm = _batch_norm


class _AllSum(torch.autograd.Function):
    """The sum across ranks, differentiable: each rank's output is the sum of every rank's
    input, so each input's gradient is the sum of every rank's output gradient."""

    @staticmethod
    def forward(ctx: Any, values: Tensor) -> Tensor:
        out = values.clone()
        with _collective("the BatchNorm all-reduce"):
            torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        out = grad.contiguous().clone()
        with _collective("the BatchNorm all-reduce"):
            torch.distributed.all_reduce(out)
        return out
