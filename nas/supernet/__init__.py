"""The supernet: the full network with maskable units, and BN recalibration per sub-network.

Modules: ``masked_bn`` (BN with a channel mask folded into its affine parameters), ``network``
(:class:`Supernet`, width choices, nested masks) and ``calibration`` (BN statistics for one
sub-network, :func:`extract_at`).
"""

from nas.supernet.calibration import (
    CALIBRATION_BATCHES,
    extract_at,
    frozen_bn_statistics,
    recalibrate_bn,
    take_batches,
    take_images,
)
from nas.supernet.masked_bn import MaskedBatchNorm2d
from nas.supernet.network import Supernet, make_maskable, nested_masks, width_choices

__all__ = [
    "CALIBRATION_BATCHES",
    "MaskedBatchNorm2d",
    "Supernet",
    "extract_at",
    "frozen_bn_statistics",
    "make_maskable",
    "nested_masks",
    "recalibrate_bn",
    "take_batches",
    "take_images",
    "width_choices",
]
