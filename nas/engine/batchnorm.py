"""BatchNorm statistics recomputed for a network as it is now (:func:`recalibrate_bn`).

A network cut from a larger one (an extracted network, a sub-network of a supernet, a pruned
network) keeps the running statistics its BatchNorm layers measured on the larger network's
activations. Its own activations differ (fewer input channels to every layer), and evaluated
with the old statistics such a network can fall to chance. :func:`recalibrate_bn` recomputes
them on data: every BatchNorm's running mean and variance become the average of its batch
statistics over the images read, each batch weighted by its number of images.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from nas.engine.evaluation import model_device
from nas.engine.state import loader_state, restore_loader
from nas.errors import DataError

__all__ = ["DEFAULT_CALIBRATION_IMAGES", "first_images", "recalibrate_bn"]

DEFAULT_CALIBRATION_IMAGES = 2000


def first_images(batches: Iterable[Any], images: int | None) -> Iterator[tuple[Tensor, Tensor]]:
    """The ``(x, y)`` batches of one pass over ``batches`` up to ``images`` images in all (the
    last one cut to size); every batch of the pass with ``images=None``."""
    if images is not None and images < 1:
        raise ValueError(f"images must be at least 1, got {images}")
    count = 0
    for x, y in batches:
        if images is not None and count + int(x.shape[0]) > images:
            x, y = x[: images - count], y[: images - count]
        count += int(x.shape[0])
        yield x, y
        if images is not None and count >= images:
            return


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Iterable[Any],
    device: torch.device | str | None = None,
    *,
    images: int | None = DEFAULT_CALIBRATION_IMAGES,
) -> None:
    """Recompute every BatchNorm layer's running statistics on the first ``images`` images of
    ``batches`` (any iterable of ``(x, y)`` batches: a DataLoader, a list; ``images=None``: all
    of one pass).

    The running mean and variance become the average of the batch statistics over those
    images, each batch weighted by its images (a cumulative average; the momentum of every
    layer is restored afterwards). The forward passes run without gradients on ``device``
    (default: the device of the model's parameters), in training mode; every module is left in
    the mode it was in. A loader's shuffling state is left where it was (the next epoch sees
    the batches it would have seen), and if anything fails (or ``batches`` holds no images)
    the statistics are left as they were."""
    dev = torch.device(device) if device is not None else model_device(model)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [(m.momentum, {k: v.clone() for k, v in m.named_buffers(recurse=False)}) for m in bns]
    modes = [(module, module.training) for module in model.modules()]
    begin = loader_state(batches)
    done = False
    try:
        for m in bns:
            m.reset_running_stats()
        model.train()
        seen = 0
        for x, _ in first_images(batches, images):
            seen += int(x.shape[0])
            for m in bns:  # this batch's share of the images so far: an average over images
                m.momentum = int(x.shape[0]) / seen
            model(x.to(dev))
        if seen == 0:
            raise DataError("cannot recalibrate BatchNorm: the data yielded no images")
        done = True
    finally:
        restore_loader(batches, begin)
        for m, (momentum, buffers) in zip(bns, saved, strict=True):
            m.momentum = momentum
            if not done:
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)
        for module, was_training in modes:
            module.training = was_training
