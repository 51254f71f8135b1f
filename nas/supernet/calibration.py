"""BN statistics for one sub-network of a supernet, and extraction from the supernet.

A sub-network that shares weights with many others needs its own BN statistics before it is
evaluated or extracted: the running averages collected while training under changing masks fit
none of them. They are re-estimated on a few fixed training batches (:func:`take_batches`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nas.engine.batchnorm import first_images
from nas.engine.batchnorm import recalibrate_bn as engine_recalibrate_bn
from nas.extraction import extract
from nas.supernet.network import Supernet
from search_spaces import WidthSpec

__all__ = [
    "CALIBRATION_BATCHES",
    "extract_at",
    "frozen_bn_statistics",
    "recalibrate_bn",
    "take_batches",
    "take_images",
]

CALIBRATION_BATCHES = 4


def recalibrate_bn(
    model: nn.Module,
    batches: Iterable[Any],
    device: torch.device | str | None = None,
) -> None:
    """Re-estimate every BN layer's running statistics on all of ``batches`` (a few fixed
    training batches; ``device``: default the model's): :func:`nas.engine.recalibrate_bn`
    without a limit on the images.

    A sub-network that shares weights with many others needs its own BN statistics before it
    is evaluated: the running averages collected while training under changing masks fit none
    of them.
    """
    engine_recalibrate_bn(model, batches, device, images=None)


def take_images(loader: Iterable[Any], n: int) -> list[tuple[Tensor, Tensor]]:
    """The first ``n`` images of one pass, in the loader's batches (the last one cut to size;
    all of them if the loader holds fewer): fixed BN-calibration data."""
    return list(first_images(loader, n))


def take_batches(loader: Iterable[Any], n: int) -> list[tuple[Tensor, Tensor]]:
    """The first ``n`` batches of one pass (fixed BN-calibration data for the whole search)."""
    batches = []
    for x, y in loader:
        batches.append((x, y))
        if len(batches) == n:
            break
    return batches


def extract_at(
    supernet: Supernet, spec: WidthSpec, calibration: Sequence[tuple[Tensor, Tensor]]
) -> nn.Module:
    """The standalone network of ``spec`` with the supernet's weights and BN statistics
    recalibrated for exactly these widths on ``calibration`` (the running statistics the
    supernet holds belong to whatever widths it ran last). Any spec of the space works: the
    found one, a uniform-width one of the same MACs, a predictor's candidate."""
    if not calibration:
        raise ValueError("extract_at needs calibration batches for the BN statistics")
    device = next(supernet.parameters()).device
    with torch.no_grad():
        supernet.set_widths(spec.widths)
        recalibrate_bn(supernet, calibration, device)
        supernet.set_masks(None)
    return extract(supernet.model.state_dict(), spec)


@contextlib.contextmanager
def frozen_bn_statistics(model: nn.Module) -> Iterator[None]:
    """BN layers normalise with the batch's statistics (as in training) but leave their running
    statistics and batch counters untouched: the architecture step looks at the network
    without changing it."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    tracking = [m.track_running_stats for m in bns]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, flag in zip(bns, tracking, strict=True):
            m.track_running_stats = flag
