"""Transfer: a found width spec trained on another task (other channels, classes, input size).

Module ``core``: :func:`transfer` (Python API), :func:`retarget`, :func:`inherit_weights`. The
``nas transfer`` job (files, ``--compare`` plot) is :mod:`nas.jobs.transfer`.
"""

from nas.transfer_learning.core import (
    MODES,
    TransferResult,
    check_mode,
    inherit_weights,
    retarget,
    transfer,
)

__all__ = ["MODES", "TransferResult", "check_mode", "inherit_weights", "retarget", "transfer"]
