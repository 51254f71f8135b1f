"""Extraction: a trained full network and a width spec become a physically smaller network.

Modules: ``weights`` (the one weights/network compatibility check and the one "load what
fits"), ``slicing`` (:func:`extract`, masks, function-preserving channel permutation) and
``saving`` (``arch.json`` + ``model.pt`` + ``model.pt2`` + ``model.ts``; :func:`load_model`).
"""

from nas.extraction.saving import MODEL_FILES, load_model, save_model, to_torchscript
from nas.extraction.slicing import (
    ChannelOrder,
    extract,
    kept_channels,
    mask_channels,
    permute_channels,
    spec_masks,
)
from nas.extraction.weights import (
    check_full_weights,
    check_initial_weights,
    check_spec_weights,
    check_weights,
    load_fitting,
    spec_state_shapes,
)

__all__ = [
    "MODEL_FILES",
    "ChannelOrder",
    "check_full_weights",
    "check_initial_weights",
    "check_spec_weights",
    "check_weights",
    "extract",
    "kept_channels",
    "load_fitting",
    "load_model",
    "mask_channels",
    "permute_channels",
    "save_model",
    "spec_masks",
    "spec_state_shapes",
    "to_torchscript",
]
