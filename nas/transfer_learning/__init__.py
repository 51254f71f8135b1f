"""Transfer: a found width spec trained on another task (other channels, classes, input size).

Modules: ``core`` (:func:`transfer`, the Python API in memory; :func:`retarget`,
:func:`inherit_weights`) and ``pipeline`` (:func:`run_transfer`: a transfer into a run directory,
its files and ``--compare`` plot; the ``nas transfer`` command only parses options into it and
prints).
"""

from nas.transfer_learning.core import (
    MODES,
    TransferResult,
    check_mode,
    inherit_weights,
    retarget,
    transfer,
)
from nas.transfer_learning.pipeline import run_transfer

__all__ = [
    "MODES",
    "TransferResult",
    "check_mode",
    "inherit_weights",
    "retarget",
    "run_transfer",
    "transfer",
]
