"""Data-driven criteria: channel independence (CHIP) and label relevance (HRel).

Both look at the feature maps of the layers that write a unit, on ``images`` training images
(the model in eval mode, no gradient), and combine a unit's writers by the coupling rule of
:mod:`nas.importance.base`.

* ``chip`` (Sui et al. 2021): per image, the writer's feature matrix ``A`` (C x HW, after its BN
  and a ReLU); a channel's score is ``||A||_* - ||A with row c zeroed||_*``, averaged over the
  images. Zeroing row ``c`` of ``A`` removes row and column ``c`` of the Gram matrix ``A A^T``,
  and ``||A||_* = sum sqrt(eig(A A^T))``: so one C x C Gram matrix per image and the
  eigenvalues of its C principal (C-1) x (C-1) submatrices, in one batched call, replace the
  C + 1 SVDs of a C x HW matrix that CHIP's code computes (:func:`nuclear_norm_drops`).
  CHIP takes a block's last feature map after the residual addition; here every writer (the
  block's last BN too) is scored on its own output, as for every other coupled criterion.
* ``hrel`` (Sarvani et al. 2022): the mutual information between each filter's conv output
  (before BN) and the labels, estimated with the matrix-based Renyi entropy of Gaussian kernel
  Gram matrices over batches of ``batch`` images (:func:`kernel_mutual_information`):
  ``H(K) = -sum l log2 l`` over the eigenvalues of ``K / tr K``, the joint entropy from the
  Hadamard product, ``MI = H(T) + H(Y) - H(T, Y)``; the label kernel has width 0.1 on one-hot
  labels and each layer's kernel width is chosen by kernel alignment with the label kernel,
  as HRel's code does. Averaged over the batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.errors import DataError
from nas.importance.base import combine_writers, register_criterion, writers
from search_spaces import SearchSpace

__all__ = [
    "kernel_mutual_information",
    "labelled_batches",
    "nuclear_norm_drops",
    "nuclear_norm_drops_svd",
    "num_classes_of",
]

LABEL_SIGMA = 0.1  # HRel's label kernel width (one-hot labels)
SIGMA_GRID = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # x the median pairwise distance
_CHUNK = 2**24  # elements of the batched submatrices held at once (float64: 128 MB)


# -- CHIP ----------------------------------------------------------------------------------------
def nuclear_norm_drops(features: Tensor) -> Tensor:
    """``(C,)``: for feature matrices ``(N, C, P)``, the mean over the N matrices of
    ``||A||_* - ||A with row c zeroed||_*`` for every row ``c``, exactly, from Gram matrices:
    the C principal (C-1) x (C-1) submatrices of ``A A^T`` when C <= P + 1, else the rank-one
    downdates ``A^T A - a_c a_c^T`` (P x P), whichever is smaller."""
    a = features.double()
    n, c, p = a.shape
    rows = c - 1 <= p
    gram = a @ a.transpose(1, 2) if rows else a.transpose(1, 2) @ a
    full = _trace_sqrt(gram)  # (N,)
    m = gram.shape[-1] - 1 if rows else gram.shape[-1]
    per_channel = max(1, m * m)
    img_step = max(1, _CHUNK // (per_channel * c))
    ch_step = c if per_channel * c <= _CHUNK else max(1, _CHUNK // per_channel)
    keep = torch.stack([torch.cat([torch.arange(i), torch.arange(i + 1, c)]) for i in range(c)])
    drops = torch.zeros(c, dtype=torch.float64)
    for i in range(0, n, img_step):
        g = gram[i : i + img_step]
        for j in range(0, c, ch_step):
            if rows:  # zeroing row c of A removes row and column c of A A^T
                k = keep[j : j + ch_step]
                sub = g[:, k[:, :, None], k[:, None, :]]
            else:  # ... and subtracts a_c a_c^T from A^T A
                r = a[i : i + img_step, j : j + ch_step]  # (n', k, P)
                sub = g[:, None] - r[..., :, None] * r[..., None, :]
            drops[j : j + ch_step] += (full[i : i + img_step, None] - _trace_sqrt(sub)).sum(0)
    return (drops / n).float()


def nuclear_norm_drops_svd(features: Tensor) -> Tensor:
    """The same as :func:`nuclear_norm_drops` computed as CHIP's code does, with one SVD per
    channel per matrix: the reference it is tested and timed against (slow)."""
    out = torch.zeros(features.shape[1], dtype=torch.float64)
    for a in features.double():
        full = torch.linalg.svdvals(a).sum()
        for c in range(a.shape[0]):
            zeroed = a.clone()
            zeroed[c] = 0
            out[c] += full - torch.linalg.svdvals(zeroed).sum()
    return out / features.shape[0]


def _trace_sqrt(gram: Tensor) -> Tensor:
    """``sum sqrt(eigenvalues)`` of symmetric positive semi-definite matrices (batched)."""
    if gram.shape[-1] == 0:
        return gram.new_zeros(gram.shape[:-2])
    return torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().sum(-1)


@register_criterion("chip", needs_data=True, description="channel independence (Sui et al. 2021)")
def chip(
    model: nn.Module, space: SearchSpace, data: Iterable[Any] | None, images: int = 256
) -> dict[str, Tensor]:
    bns = [la.name for la in writers(space, "bn")]
    sums: dict[str, Tensor] = {}
    count = 0
    for n, outputs in _batches(model, data, bns, images):
        for name, out in outputs.items():
            feats = F.relu(out).flatten(2)  # (N, C, HW) after BN and ReLU
            drop = nuclear_norm_drops(feats) * n
            sums[name] = sums[name] + drop if name in sums else drop
        count += n
    return combine_writers(space, {name: s / count for name, s in sums.items()})


# -- HRel ----------------------------------------------------------------------------------------
def _entropy(gram: Tensor) -> Tensor:
    """Matrix-based Renyi entropy (alpha -> 1) of Gram matrices ``(..., N, N)``, in bits."""
    k = gram / gram.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    lam = torch.linalg.eigvalsh(k).clamp_min(0)
    return -(lam * torch.log2(lam.clamp_min(1e-30))).sum(-1)


def _gaussian(sq_dist: Tensor, sigma: Tensor | float) -> Tensor:
    sigma = torch.as_tensor(sigma, dtype=sq_dist.dtype)
    while sigma.dim() < sq_dist.dim():
        sigma = sigma[..., None]
    return torch.exp(-sq_dist / (2 * sigma**2))


def kernel_mutual_information(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``(C,)``: for features ``(N, C, P)`` of N samples, the mutual information (bits) between
    each channel's map and the labels, by the matrix-based Renyi entropy of Gaussian Gram
    matrices; the kernel width (one for all channels) is chosen by alignment with the label
    kernel."""
    t = features.double().transpose(0, 1)  # (C, N, P)
    sq = torch.cdist(t, t).pow(2)  # (C, N, N)
    y = F.one_hot(labels, num_classes).double()
    k_y = _gaussian(torch.cdist(y, y).pow(2), LABEL_SIGMA)
    off = ~torch.eye(sq.shape[-1], dtype=torch.bool)
    median = sq[:, off].sqrt().median(dim=1).values.clamp_min(1e-12)  # per channel
    best, best_alignment = None, -1.0
    for scale in SIGMA_GRID:
        k_t = _gaussian(sq, median * scale)
        alignment = float(((k_t * k_y).sum((1, 2)) / (k_t.norm(dim=(1, 2)) * k_y.norm())).mean())
        if alignment > best_alignment:
            best, best_alignment = k_t, alignment
    assert best is not None
    return (_entropy(best) + _entropy(k_y) - _entropy(best * k_y)).float()


@register_criterion(
    "hrel", needs_data=True, description="mutual information with the labels (Sarvani et al.)"
)
def hrel(
    model: nn.Module,
    space: SearchSpace,
    data: Iterable[Any] | None,
    images: int = 500,
    batch: int = 100,
) -> dict[str, Tensor]:
    convs = [la.name for la in writers(space, "conv")]
    num_classes = num_classes_of(model)
    sums: dict[str, Tensor] = {}
    batches = 0
    for _x, y, outputs in labelled_batches(model, data, convs, images, batch):
        for name, out in outputs.items():
            mi = kernel_mutual_information(out.flatten(2), y, num_classes)
            sums[name] = sums[name] + mi if name in sums else mi
        batches += 1
    return combine_writers(space, {name: s / batches for name, s in sums.items()})


def num_classes_of(model: nn.Module) -> int:
    """The classes of a classifier: its last linear layer's outputs."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features


# -- feature maps --------------------------------------------------------------------------------
@contextlib.contextmanager
def _recording(model: nn.Module, names: list[str]) -> Iterator[dict[str, Tensor]]:
    outputs: dict[str, Tensor] = {}
    modules = dict(model.named_modules())

    def keep(name: str) -> Any:
        def hook(_m: nn.Module, _i: Any, out: Tensor) -> None:
            outputs[name] = out.detach()

        return hook

    handles = [modules[n].register_forward_hook(keep(n)) for n in names]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batches(
    model: nn.Module, data: Iterable[Any] | None, names: list[str], images: int
) -> Iterator[tuple[int, dict[str, Tensor]]]:
    """``(images in the batch, {layer: output})`` over the first ``images`` images of data."""
    for x, _y, outputs in labelled_batches(model, data, names, images, None):
        yield x.shape[0], outputs


def labelled_batches(
    model: nn.Module, data: Iterable[Any] | None, names: list[str], images: int, batch: int | None
) -> Iterator[tuple[Tensor, Tensor, dict[str, Tensor]]]:
    """``(x, y, {layer: output})`` over the first ``images`` images of data, rebatched to
    ``batch`` images when given (the last batch may be smaller)."""
    if data is None:
        raise DataError("this criterion needs data")
    seen = 0
    device = _device(model)
    for x, y in _rebatched(data, batch):
        x, y = x[: images - seen], y[: images - seen]
        if x.shape[0] == 0:
            break
        seen += x.shape[0]
        with _recording(model, names) as outputs:
            model(x.to(device))
            yield x, y.cpu(), {k: v.cpu() for k, v in outputs.items()}
        if seen >= images:
            break
    if seen == 0:
        raise DataError("no images to score the channels on (the data are empty)")


def _rebatched(data: Iterable[Any], batch: int | None) -> Iterator[tuple[Tensor, Tensor]]:
    if batch is None:
        for x, y, *_ in data:
            yield x, y
        return
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    held = 0
    for x, y, *_ in data:
        xs.append(x)
        ys.append(y)
        held += x.shape[0]
        while held >= batch:
            cx, cy = torch.cat(xs), torch.cat(ys)
            yield cx[:batch], cy[:batch]
            xs, ys, held = [cx[batch:]], [cy[batch:]], held - batch
    if held >= 2:  # a kernel over one sample says nothing
        yield torch.cat(xs), torch.cat(ys)
