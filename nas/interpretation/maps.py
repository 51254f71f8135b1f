"""Channel-wise disentangled interpretation (after Cui et al., "CHIP: Channel-wise disentangled
interpretation of deep convolutional neural networks", TNNLS 2020): which channels of a layer
each class needs, learned by perturbation without retraining the network.

For a layer with ``C`` output channels and ``K`` classes, a ``(K, C)`` table of importances
``m = sigmoid(z)`` is learned with the network's weights frozen: the layer's output for an image
of class ``y`` is multiplied channel by channel by ``m[y]`` (the perturbation: a channel with
importance 0 is removed), and ``z`` minimises the cross-entropy of the perturbed network on the
scoring images plus ``sparsity * mean(m)``: each class keeps as few channels as it can while it
is still recognised (:func:`learn_importances`). Sparse, class-discriminative importances result:
the channels the class relies on.

A class's map over an image (:func:`class_maps`) is the layer's feature maps weighted by that
class's importances, ``relu(sum_k m[y, k] A_k)``, normalised to [0, 1] and resized to the image.

:func:`deletion_accuracy` measures how faithful the table is: the accuracy on held-out images when
the layer loses the top channels of the class the network predicts, against as many random
channels (seeded). (Keeping only the true class's top channels would say nothing: the
importances are learned to make their class win, so that measure reads the label.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "class_maps",
    "deletion_accuracy",
    "learn_importances",
    "masked_layer",
]


@contextlib.contextmanager
def masked_layer(model: nn.Module, layer: str, masks: dict[str, Tensor]) -> Iterator[None]:
    """While inside, the output of ``layer`` is multiplied by ``masks["now"]`` (``(N, C)``,
    per image; set it before each forward pass)."""

    def hook(_m: nn.Module, _i: Any, out: Tensor, store: dict[str, Tensor]) -> Tensor:
        return out * store["now"][:, :, None, None].to(out.dtype)

    handle = model.get_submodule(layer).register_forward_hook(partial(hook, store=masks))
    try:
        yield
    finally:
        handle.remove()


def _frozen(model: nn.Module) -> Iterator[nn.Parameter]:
    for p in model.parameters():
        if p.requires_grad:
            p.requires_grad_(False)
            yield p


def learn_importances(
    model: nn.Module,
    layer: str,
    batches: Iterable[tuple[Tensor, Tensor]],
    num_classes: int,
    channels: int,
    *,
    sparsity: float = 0.05,
    steps: int = 200,
    lr: float = 0.1,
    seed: int = 0,
) -> Tensor:
    """``(K, C)`` importances in [0, 1] of ``layer``'s channels per class (see the module),
    learned on ``batches`` (kept in memory; the network in eval mode, its weights untouched)."""
    data = [(x, y) for x, y in batches]
    if not data:
        raise ValueError("no images to learn the channel importances on")
    was_training = model.training
    model.eval()
    thawed = list(_frozen(model))
    g = torch.Generator().manual_seed(seed)
    z = (3.0 + 0.01 * torch.randn(num_classes, channels, generator=g)).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    masks: dict[str, Tensor] = {}
    try:
        with masked_layer(model, layer, masks):
            for step in range(steps):
                x, y = data[step % len(data)]
                opt.zero_grad(set_to_none=True)
                m = torch.sigmoid(z)
                masks["now"] = m[y]
                loss = F.cross_entropy(model(x), y) + sparsity * m[y].mean()
                loss.backward()
                opt.step()
    finally:
        for p in thawed:
            p.requires_grad_(True)
        model.train(was_training)
    return torch.sigmoid(z).detach()


@torch.no_grad()
def class_maps(
    model: nn.Module, layer: str, images: Tensor, classes: Tensor, importances: Tensor
) -> Tensor:
    """``(N, H, W)`` maps in [0, 1]: each image's ``layer`` features weighted by the
    importances of its class in ``classes``, rectified, normalised and resized to the image."""
    kept: dict[str, Tensor] = {}

    def keep(_m: nn.Module, _i: Any, out: Tensor) -> None:
        kept["features"] = out

    handle = model.get_submodule(layer).register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        handle.remove()
        model.train(was_training)
    a = kept["features"]  # (N, C, h, w)
    weighted = F.relu((a * importances[classes][:, :, None, None].to(a)).sum(1, keepdim=True))
    resized = F.interpolate(weighted, size=images.shape[-2:], mode="bilinear", align_corners=False)
    flat = resized.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp_min(1e-12)).view(-1, *images.shape[-2:])


@torch.no_grad()
def deletion_accuracy(
    model: nn.Module,
    layer: str,
    batches: Iterable[tuple[Tensor, Tensor]],
    importances: Tensor,
    remove: int,
    *,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Accuracy (%) on ``batches`` with all channels of ``layer``; with the ``remove`` most
    important channels of each image's **predicted** class (the network's own decision: no
    label is read to choose them) removed; and with ``remove`` random channels removed (seeded).
    The more the table says about the decisions, the further the second falls below the third.
    """
    k, c = importances.shape
    top = torch.ones(k, c)
    top.scatter_(1, importances.topk(remove, dim=1).indices, 0.0)
    g = torch.Generator().manual_seed(seed)
    hits = [0, 0, 0]
    seen = 0
    was_training = model.training
    model.eval()
    masks: dict[str, Tensor] = {}
    try:
        with masked_layer(model, layer, masks):
            for x, y in batches:
                n = y.shape[0]
                masks["now"] = torch.ones(n, c)
                predicted = model(x).argmax(1)
                rand = torch.ones(n, c)
                rand.scatter_(1, torch.rand(n, c, generator=g).topk(remove, dim=1).indices, 0.0)
                hits[0] += int((predicted == y).sum())
                for i, m in ((1, top[predicted]), (2, rand)):
                    masks["now"] = m
                    hits[i] += int((model(x).argmax(1) == y).sum())
                seen += n
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("no images to measure the removed channels on")
    full, without_top, without_random = (100.0 * h / seen for h in hits)
    return full, without_top, without_random
