"""A dense graph convolutional network that ranks width assignments (Chen et al., AAAI 2021).

Weight-sharing NAS scores sub-networks with a supernet, and those scores are noisy. The GCN is
fitted to the scores of a few hundred sampled sub-networks and then ranks the whole width space
cheaply (over 10,000 assignments per second on two CPU cores for ResNet-20/56).

* :class:`GCN`: ``layers`` graph convolutions ``H' = ReLU(A_hat @ H @ W + b)`` over the space's
  graph (:class:`~predictors.graph.GraphEncoder`; dense matrices, no graph library), then the
  mean over nodes concatenated with the output node's (``fc``) embedding, then a two-layer MLP
  giving one score per assignment.
* :func:`fit_predictor`: Adam on either a mean-squared error on standardised scores (``"mse"``)
  or a pairwise logistic ranking loss (``"rank"``, the default: only the order of the scores
  matters for a search). Seeded and deterministic on a CPU; the global RNG state is left as it
  was.
* :class:`Predictor`: the fitted model with its encoder; :meth:`Predictor.predict` returns
  ``model * std + mean`` (calibrated for ``"mse"``, only monotone for ``"rank"``), and
  :meth:`Predictor.save`/:meth:`Predictor.load` store it as a ``weights_only`` file.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import search_spaces
from predictors.graph import GraphEncoder
from search_spaces import SearchSpace
from search_spaces.errors import ConfigError, NasError, WeightsError
from search_spaces.files import atomic_torch_save, torch_load

FORMAT = "channel-nas/predictor-1"
LOSSES = ("mse", "rank")


@dataclass
class PredictorConfig:
    """Hyper-parameters of the GCN and its training."""

    hidden: int = 64
    layers: int = 3
    dropout: float = 0.0
    loss: str = "rank"
    epochs: int = 200
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    seed: int = 0

    def validate(self) -> PredictorConfig:
        """Check every field; raises :class:`ConfigError` (a ``ValueError``) with one line."""
        if not 2 <= self.layers <= 4:
            raise ConfigError(f"predictor layers must be 2, 3 or 4, got {self.layers}")
        if self.loss not in LOSSES:
            raise ConfigError(f"predictor loss must be one of {', '.join(LOSSES)}, got {self.loss}")
        if self.hidden < 1 or self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("predictor hidden, epochs must be >= 1 and batch_size >= 2")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"predictor dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError("predictor lr must be positive and weight_decay non-negative")
        return self


class GraphConv(nn.Module):
    """One dense graph convolution ``A_hat @ H @ W + b`` (the activation is applied by GCN).

    ``h`` is node-major, ``(N, B, F)``: the product with ``A_hat`` is then a single GEMM
    ``(N, N) @ (N, B * F_out)`` without copies, which is what makes ranking 10,000+ assignments
    a second fast on a CPU.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, h: Tensor, adjacency: Tensor) -> Tensor:
        x = self.linear(h)
        out = (adjacency @ x.reshape(x.shape[0], -1)).view_as(x)
        return out.add_(self.bias)


class GCN(nn.Module):
    """Dense GCN: graph convolutions, mean + output-node readout, two-layer MLP head."""

    def __init__(
        self,
        num_features: int,
        *,
        hidden: int = 64,
        layers: int = 3,
        dropout: float = 0.0,
        output_index: int = -1,
    ) -> None:
        super().__init__()
        sizes = [num_features] + [hidden] * layers
        self.convs = nn.ModuleList(GraphConv(a, b) for a, b in pairwise(sizes))
        self.dropout = nn.Dropout(dropout)
        self.output_index = output_index
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: Tensor, adjacency: Tensor) -> Tensor:
        """``features`` (B, N, F) and normalised ``adjacency`` (N, N) -> scores (B,)."""
        h = features.transpose(0, 1)  # node-major (N, B, F), see GraphConv
        for conv in self.convs:
            h = self.dropout(F.relu(conv(h, adjacency), inplace=True))
        readout = torch.cat([h.mean(0), h[self.output_index]], -1)
        return self.head(readout).squeeze(-1)


def ranking_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean of ``softplus(-(s_i - s_j))`` over all ordered pairs with ``target_i > target_j``."""
    better = target[:, None] > target[None, :]
    if not bool(better.any()):
        return pred.sum() * 0.0
    return F.softplus(pred[None, :] - pred[:, None])[better].mean()


class Predictor:
    """A fitted GCN with the encoder of its space and the statistics of its training scores."""

    def __init__(
        self,
        encoder: GraphEncoder,
        model: GCN,
        config: PredictorConfig,
        score_mean: float,
        score_std: float,
    ) -> None:
        self.encoder = encoder
        self.model = model
        self.config = config
        self.score_mean = score_mean
        self.score_std = score_std

    @property
    def space(self) -> SearchSpace:
        return self.encoder.space

    @torch.no_grad()
    def predict(self, widths: Tensor, batch_size: int = 1024) -> Tensor:
        """Scores ``(M,)`` of width assignments ``(M, U)``; higher means better.

        Chunks of ``batch_size`` keep the activations (``N * hidden`` floats per assignment) in
        cache: 1024 is about twice as fast as 4096 for ResNet-56 on a CPU.
        """
        self.model.eval()
        adjacency = self.encoder.adjacency
        out = [
            self.model(self.encoder.features(chunk), adjacency)
            for chunk in widths.split(batch_size)
        ]
        scores = torch.cat(out) if out else torch.zeros(0)
        return scores * self.score_std + self.score_mean

    def save(self, path: str | Path) -> None:
        """Write the predictor atomically; it loads with ``torch.load(weights_only=True)``."""
        space = self.space
        atomic_torch_save(
            {
                "format": FORMAT,
                "space": space.name,
                "num_classes": space.num_classes,
                "in_channels": space.in_channels,
                "input_size": list(space.input_size),
                "config": asdict(self.config),
                "score_mean": float(self.score_mean),
                "score_std": float(self.score_std),
                "state_dict": self.model.state_dict(),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None) -> Predictor:
        """Read a saved predictor; any problem raises :class:`WeightsError` with one line."""
        p = Path(path)
        obj = torch_load(p, "predictor file")
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise WeightsError(f"{p} is not a channel-nas predictor file ({FORMAT})")
        try:
            h, w = obj["input_size"]
            stored = search_spaces.create(
                obj["space"],
                num_classes=obj["num_classes"],
                in_channels=obj["in_channels"],
                input_size=(h, w),
            )
            names = {f.name for f in fields(PredictorConfig)}
            config = PredictorConfig(**{k: v for k, v in obj["config"].items() if k in names})
            config.validate()
            mean, std = float(obj["score_mean"]), float(obj["score_std"])
        except (KeyError, TypeError, ValueError, NasError) as exc:
            raise WeightsError(f"{p} holds an invalid predictor: {exc}") from None
        if space is not None and _task(space) != _task(stored):
            raise WeightsError(
                f"{p} is a predictor for {_describe(stored)}, not {_describe(space)}"
            )
        encoder = GraphEncoder.for_space(space or stored)
        model = _model(encoder, config)
        try:
            model.load_state_dict(obj["state_dict"])
        except (RuntimeError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise WeightsError(f"{p} does not match the predictor architecture: {first}") from None
        model.eval()
        return cls(encoder, model, config, mean, std)


def fit_predictor(
    encoder: GraphEncoder, widths: Tensor, scores: Tensor, config: PredictorConfig
) -> Predictor:
    """Fit a GCN to ``scores`` ``(B,)`` of the assignments ``widths`` ``(B, U)``."""
    config.validate()
    if widths.dim() != 2 or scores.shape != (widths.shape[0],) or widths.shape[0] < 2:
        raise ValueError(
            f"need widths (B, U) and scores (B,) with B >= 2, got {tuple(widths.shape)} "
            f"and {tuple(scores.shape)}"
        )
    target = scores.double()
    mean, std = float(target.mean()), float(target.std())
    std = std if std > 0 else 1.0
    target = ((target - mean) / std).float()
    features = encoder.features(widths)
    adjacency = encoder.adjacency
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = _model(encoder, config)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        gen = torch.Generator().manual_seed(config.seed)
        model.train()
        for _ in range(config.epochs):
            for idx in torch.randperm(len(target), generator=gen).split(config.batch_size):
                optimizer.zero_grad(set_to_none=True)
                pred = model(features[idx], adjacency)
                if config.loss == "mse":
                    loss = F.mse_loss(pred, target[idx])
                else:
                    loss = ranking_loss(pred, target[idx])
                loss.backward()
                optimizer.step()
    model.eval()
    return Predictor(encoder, model, config, mean, std)


def rank_correlations(predicted: Tensor, truth: Tensor) -> dict[str, float]:
    """Kendall's tau and Spearman's rho between two score vectors; NaN where undefined (either
    vector constant), without scipy's warning."""
    from scipy import stats  # slow to import: only where correlations are computed

    a = predicted.detach().double().cpu().numpy()
    b = truth.detach().double().cpu().numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return {
            "kendall_tau": float(stats.kendalltau(a, b).statistic),
            "spearman": float(stats.spearmanr(a, b).statistic),
        }


def _model(encoder: GraphEncoder, config: PredictorConfig) -> GCN:
    return GCN(
        encoder.num_features,
        hidden=config.hidden,
        layers=config.layers,
        dropout=config.dropout,
        output_index=encoder.output_index,
    )


def _task(space: SearchSpace) -> tuple[Any, ...]:
    return (space.name, space.num_classes, space.in_channels, tuple(space.input_size))


def _describe(space: SearchSpace) -> str:
    h, w = space.input_size
    return f"{space.name} ({space.num_classes} classes, {space.in_channels} channels, {h}x{w})"
