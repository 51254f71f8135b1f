"""Performance predictors: rank a whole width space from a few hundred supernet scores.

A GCN over the space's data-flow graph (Chen et al., "Fitting the Search Space of
Weight-sharing NAS with Graph Convolutional Networks", AAAI 2021) is fitted to the noisy
supernet scores of sampled sub-networks and then scores every candidate cheaply.

>>> import search_spaces, torch
>>> from predictors import GraphEncoder, PredictorConfig, fit_predictor
>>> encoder = GraphEncoder.for_space(search_spaces.create("resnet20_b"))
>>> widths = torch.randint(4, 17, (32, len(encoder.space.units)))  # (B, U), unit order
>>> predictor = fit_predictor(encoder, widths, widths.float().sum(1), PredictorConfig(epochs=2))
>>> predictor.predict(widths).shape
torch.Size([32])
"""

from predictors.gcn import (
    GCN,
    Predictor,
    PredictorConfig,
    fit_predictor,
    rank_correlations,
    ranking_loss,
)
from predictors.graph import FEATURES, KINDS, GraphEncoder, space_graph

__all__ = [
    "FEATURES",
    "GCN",
    "KINDS",
    "GraphEncoder",
    "Predictor",
    "PredictorConfig",
    "fit_predictor",
    "rank_correlations",
    "ranking_loss",
    "space_graph",
]
