"""Which channels a network keeps for which classes: channel-wise disentangled interpretation
(CHIP, Cui et al. 2020). Modules: ``maps`` (importances learned by perturbation, class maps, the
kept-channel accuracy) and ``run`` (:func:`run_explain`, what ``nas explain`` runs)."""

from nas.interpretation.maps import (
    class_maps,
    deletion_accuracy,
    learn_importances,
    masked_layer,
)
from nas.interpretation.run import layer_channels, run_explain

__all__ = [
    "class_maps",
    "deletion_accuracy",
    "layer_channels",
    "learn_importances",
    "masked_layer",
    "run_explain",
]
