"""Input-conditional gates: ``conditional-gumbel`` (Herrmann et al. 2020) and ``batch-shaping``
(Bejnordi et al. 2020).

A small gate network per gated unit looks at the input of the unit's residual block (in a
traced space: of the first layer that writes the unit; global average pool -> Linear(C, 16) ->
BN -> ReLU -> Linear(16, G)) and opens or closes each of the unit's ``G`` groups of
``group_size`` channels **for each image**. The block-internal units are gated (a residual
stream is shared by every block of its stage and stays at full width). The
gates are hard straight-through samples in training, trained jointly with the weights:

* ``conditional-gumbel``: Gumbel (logistic) noise at temperature 1, gates starting about 98 %
  open; the batch activation loss ``(target - r)^2`` with ``r`` the mean over the batch of each
  image's MAC share (exact: per-image widths through the space's MAC formula);
* ``batch-shaping``: binary-concrete samples at temperature 2/3 (the mode, ``p > 0.5``, at
  evaluation); for the first ``shaping_share`` of the search the batch-shaping loss (each gate's
  probabilities over the batch, sorted, against the CDF of a Beta(0.6, 0.4) prior, weight
  ``shaping_weight`` decayed to 0), then the activation loss toward the MAC target, ramped in.

What they deliver is their **conditional** network (gates per image; :mod:`nas.gates.deploy`),
whose gates' threshold is calibrated (:func:`nas.gates.deploy.calibrate_gates`: one logit offset
for every gate) so that its average MACs per validation image land in the MAC band, or a
**static** network (``nas search --static``): after the search the share of training images for
which each channel was open is measured, a channel open for fewer than ``--static-share`` of them
goes, and the projection brings the rest into the MAC band with those shares as keep
probabilities (as the per-channel static strategies do). The per-input MACs of the conditional
network (mean, p50, p95 over the test images, counted exactly from the gates open for each
image, and the gate networks' own MACs) are reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nas.errors import ConfigError
from nas.gates.base import register_strategy
from nas.gates.channel_gates import (
    _EPS,
    ChannelGates,
    _binary_sample,
    group_order,
    open_logit,
)
from nas.supernet import Supernet
from search_spaces import SearchSpace

__all__ = [
    "BatchShaping",
    "ConditionalGates",
    "ConditionalGumbel",
    "GateSite",
    "batch_shaping_loss",
    "beta_cdf",
    "gate_network",
    "gate_sites",
    "open_shares",
]

HIDDEN = 16


def gate_network(
    in_channels: int, groups: int, open_logit: float, *, pool: bool = True
) -> nn.Sequential:
    """Pool -> Linear(C, 16) -> BN -> ReLU -> Linear(16, G), gates starting at ``open_logit``
    (``pool`` False: the input is a vector of ``C`` features already, as a linear layer's)."""
    net = nn.Sequential(
        nn.AdaptiveAvgPool2d(1) if pool else nn.Identity(),
        nn.Flatten(),
        nn.Linear(in_channels, HIDDEN),
        nn.BatchNorm1d(HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, groups),
    )
    last = net[-1]
    assert isinstance(last, nn.Linear)
    nn.init.normal_(last.weight, std=0.01)
    nn.init.constant_(last.bias, open_logit)
    return net


class ConditionalGates(ChannelGates):
    """Per-input gates on the groups of the block-internal units (see the module)."""

    per_input = True
    train_mode = "hard"
    own_budget = True

    @classmethod
    def choices_for(
        cls, space: SearchSpace, choices: Mapping[str, Sequence[int]], **options: Any
    ) -> dict[str, list[int]]:
        """Groups of the block-internal units; the residual streams and the stem stay at full
        width."""
        if not any(u.kind == "block" for u in space.units):
            raise ConfigError(f"space {space.name} has no block-internal units to gate")
        grouped = super().choices_for(space, choices, **options)
        return {
            u.name: grouped[u.name] if u.kind == "block" else [u.max_width] for u in space.units
        }

    def __init__(
        self,
        space: SearchSpace,
        choices: Mapping[str, Sequence[int]],
        *,
        group_size: int = 1,
        init_open: float = 0.98,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(space, choices, group_size=group_size)
        logit = open_logit(init_open, temperature)
        self.temperature = temperature
        self.gated = [u.name for u in space.units if u.kind == "block"]
        # where each unit's gate network looks: the input of its residual block (hand-written
        # ResNets), or of the first layer that writes the unit (traced spaces)
        self.sites = gate_sites(space, self.gated)
        self.nets = nn.ModuleDict(
            {
                _key(u): gate_network(site.in_channels, self.groups[u], logit, pool=site.spatial)
                for u, site in self.sites.items()
            }
        )
        self._probs: dict[str, Tensor] = {}  # the last batch's open probabilities (N, G)
        self.frozen: dict[str, Tensor] | None = None  # per-unit open shares (--static)
        self.static_share = 0.5  # a group open for fewer images is closed (--static-share)

    # -- the gates of a batch ---------------------------------------------------------------
    def attach(self, supernet: Supernet) -> None:
        super().attach(supernet)
        for module in dict.fromkeys(site.module for site in self.sites.values()):
            units = [u for u in self.gated if self.sites[u].module == module]
            supernet.model.get_submodule(module).register_forward_pre_hook(self._hook(units))

    def _hook(self, units: list[str]) -> Any:
        def hook(module: nn.Module, args: tuple[Tensor, ...]) -> None:
            gating = self.supernet.gating
            if gating is None or self.frozen is not None:
                return  # masks set by set_masks / set_widths (or a static gating) stand
            mode, _ = gating
            x = args[0]
            # the gate networks' BatchNorm learns in the training steps only: a discrete pass
            # (evaluation, BN recalibration, open shares) uses its running statistics, as the
            # deployed conditional network does (whose gates are then those evaluated here)
            training = module.training and mode != "discrete"
            if self.nets.training != training:
                self.nets.train(training)
            for u in units:
                logits = self.nets[_key(u)](x)  # (N, G)
                self._probs[u] = torch.sigmoid(logits)
                groups = self._sample(logits, mode)
                self._last[u] = groups.repeat_interleave(self.group_size, dim=1)
            # one update for the site's units: the layers they reach recompute their masks once
            self.supernet.update_masks({u: self._last[u] for u in units})

        return hook

    def _sample(self, logits: Tensor, mode: str) -> Tensor:
        return _binary_sample(logits, mode, self.temperature)

    def gate(self, mode: str, tau: float) -> None:
        if self.frozen is not None:  # --static: the gates as one static pruning
            super().gate(mode, tau)
            return
        self.supernet.set_masks(None)
        self._last = {}  # this pass's per-image masks only (no static masks of earlier calls)
        self.supernet.gating = (mode, tau)

    # -- static views (keep probabilities) ----------------------------------------------------
    def keep_probs(self) -> dict[str, Tensor]:
        """Per unit, each group's open probability: the measured open share after
        :meth:`freeze`, else the mean over the last batch (1 for the ungated units)."""
        device = self._device()
        out = {}
        for u in self.units:
            if self.frozen is not None:
                out[u] = self.frozen[u].to(device)
            elif u in self._probs:
                out[u] = self._probs[u].mean(0)
            else:
                out[u] = torch.ones(self.groups[u], device=device)
        return out

    def _group_masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        probs = self.keep_probs()
        if mode == "discrete":
            share = self.static_share
            return {u: (p >= share).to(p.dtype) for u, p in probs.items()}
        return {u: p.detach().clone() for u, p in probs.items()}

    def freeze(self, shares: Mapping[str, Tensor], share: float) -> None:
        """Turn the gates into a static pruning: each group open with its measured share of
        images; a group open for fewer than ``share`` of them is closed."""
        self.frozen = {u: s.detach().float() for u, s in shares.items()}
        self.static_share = share

    def make_static(self, batches: Iterable[Any], share: float, device: torch.device) -> None:
        """:meth:`freeze` at the open shares measured on ``batches`` (training images)."""
        shares, _ = open_shares(self.supernet, self, batches, device)
        self.freeze(shares, share)

    def discrete_widths(self) -> dict[str, int]:
        return {
            u: max(1, int((p.detach() >= self.static_share).sum())) * self.group_size
            if u in self.gated
            else self.space.max_widths[u]
            for u, p in self.keep_probs().items()
        }

    def choice_log_probs(self) -> dict[str, Tensor]:
        scores = super().choice_log_probs()
        return {u: lp if u in self.gated else torch.zeros(1) for u, lp in scores.items()}

    def used_widths(self) -> dict[str, Tensor]:
        """Per unit, the mean over the batch of each image's width (straight-through)."""
        return {u: m.sum(1).mean() for u, m in self._last.items()}

    def image_widths(self) -> Tensor:
        """``(N, U)``: the width of every unit for each image of the last batch (the ungated
        units at full width), float64, differentiable through the straight-through masks."""
        n = next(iter(self._last.values())).shape[0]
        device = self._device()
        cols = [
            self._last[u].sum(1).double()
            if u in self._last
            else torch.full((n,), float(self.space.max_widths[u]), device=device).double()
            for u in self.units
        ]
        return torch.stack(cols, 1)

    def budget_loss(self, target_ratio: float) -> Tensor:
        """The activation loss ``(target - r)^2``, ``r`` the mean over the batch of each image's
        MAC share (exact and differentiable through the straight-through masks)."""
        return (target_ratio - self.batch_rate()) ** 2

    def batch_rate(self) -> Tensor:
        macs = self.space.batched_macs(self.image_widths())
        return (macs.mean() / self.space.macs()).float()

    def permute(self, order: Mapping[str, Tensor]) -> None:
        if self.frozen is None:
            raise ConfigError("a per-input strategy is permuted only as a static pruning")
        for u in self.units:
            groups = group_order(order[u], self.group_size)
            self.frozen[u] = self.frozen[u][groups.to(self.frozen[u].device)]
            if u in self.gated:  # the gate network's outputs follow their groups
                net = self.nets[_key(u)]
                assert isinstance(net, nn.Sequential)
                last = net[-1]
                assert isinstance(last, nn.Linear)
                with torch.no_grad():
                    idx = groups.to(last.weight.device)
                    last.weight.copy_(last.weight[idx])
                    last.bias.copy_(last.bias[idx])

    def _device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


def _key(unit: str) -> str:
    return unit.replace(".", "_")


@dataclass(frozen=True)
class GateSite:
    """Where a unit's gate network reads: the input of ``module`` (``in_channels`` channels, or
    features where ``spatial`` is False)."""

    module: str
    in_channels: int
    spatial: bool = True


def gate_sites(space: SearchSpace, units: Sequence[str]) -> dict[str, GateSite]:
    """Each gated unit's :class:`GateSite`: in a hand-written ResNet the input of the unit's
    residual block (every internal unit of a block decides from what enters it); in a traced
    space the input of the first conv / linear layer that writes the unit."""
    if space.family != "traced":
        inputs = {
            la.name.rsplit(".", 1)[0]: la.in_channels
            for la in space.layers
            if la.kind == "conv" and la.name.endswith(".conv1")
        }
        blocks = {u: u.rsplit(".", 1)[0] for u in units}
        return {u: GateSite(blocks[u], inputs[blocks[u]]) for u in units}
    sites: dict[str, GateSite] = {}
    for la in space.layers:
        u = la.out_unit
        if la.kind in ("conv", "linear") and u is not None and u in units and u not in sites:
            features = sum(s.channels * s.repeat for s in la.inputs)
            sites[u] = GateSite(la.name, features, spatial=la.kind == "conv")
    return sites


@torch.no_grad()
def open_shares(
    supernet: Supernet, strategy: ConditionalGates, batches: Iterable[Any], device: torch.device
) -> tuple[dict[str, Tensor], Tensor]:
    """The share of images for which each group was open (the mode of its gate, in eval mode),
    and every image's MACs, over ``batches``."""
    sums: dict[str, Tensor] = {}
    macs: list[Tensor] = []
    count = 0
    was = supernet.training
    supernet.eval()
    for x, _ in batches:
        strategy.gate("discrete", 1.0)
        supernet(x.to(device))
        for u in strategy.gated:
            groups = strategy._last[u][:, :: strategy.group_size]
            sums[u] = sums[u] + groups.sum(0) if u in sums else groups.sum(0)
        macs.append(strategy.space.batched_macs(strategy.image_widths().round().long().cpu()))
        count += x.shape[0]
    supernet.set_masks(None)
    supernet.train(was)
    shares = {
        u: (sums[u] / count).cpu() if u in sums else torch.ones(strategy.groups[u])
        for u in strategy.units
    }
    return shares, torch.cat(macs)


@register_strategy("conditional-gumbel")
class ConditionalGumbel(ConditionalGates):
    """Input-conditional Gumbel gates with the batch activation loss (Herrmann et al.)."""

    name = "conditional-gumbel"


class _BetaCDF(torch.autograd.Function):
    """The regularised incomplete beta function (scipy) with its derivative, the Beta pdf."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, a: float, b: float) -> Tensor:
        from scipy.special import betainc

        ctx.save_for_backward(x)
        ctx.ab = (a, b)
        values = betainc(a, b, x.detach().double().cpu().numpy())
        return torch.as_tensor(values, dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        a, b = ctx.ab
        xc = x.double().clamp(_EPS, 1 - _EPS)
        log_pdf = (
            (a - 1) * xc.log()
            + (b - 1) * (1 - xc).log()
            - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
        )
        return grad * log_pdf.exp().to(grad.dtype), None, None


def beta_cdf(x: Tensor, a: float, b: float) -> Tensor:
    """The CDF of Beta(a, b) at ``x`` (in [0, 1]), differentiable in ``x``."""
    out: Tensor = _BetaCDF.apply(x, a, b)
    return out


def batch_shaping_loss(probs: Tensor, a: float = 0.6, b: float = 0.4) -> Tensor:
    """Batch shaping (Bejnordi et al.): for every gate (column of ``probs``, ``(N, G)``), its
    values over the batch sorted, and the squared differences between the prior's CDF at them
    and the empirical CDF ``i / (N + 1)``, summed over the batch and averaged over the gates."""
    n = probs.shape[0]
    values = torch.sort(probs, dim=0).values
    empirical = torch.arange(1, n + 1, dtype=probs.dtype, device=probs.device) / (n + 1)
    return ((beta_cdf(values, a, b) - empirical[:, None]) ** 2).sum(0).mean()


@register_strategy("batch-shaping")
class BatchShaping(ConditionalGates):
    """Input-conditional gates shaped by a Beta prior, then pulled to the MAC target."""

    name = "batch-shaping"

    def __init__(
        self,
        space: SearchSpace,
        choices: Mapping[str, Sequence[int]],
        *,
        group_size: int = 1,
        init_open: float = 0.9,
        temperature: float = 2 / 3,
        shaping_weight: float = 0.75,
        shaping_share: float = 0.5,
        prior_a: float = 0.6,
        prior_b: float = 0.4,
    ) -> None:
        super().__init__(
            space, choices, group_size=group_size, init_open=init_open, temperature=temperature
        )
        if not 0 <= shaping_share <= 1:
            raise ConfigError(f"shaping_share must be in [0, 1], got {shaping_share}")
        if prior_a <= 0 or prior_b <= 0 or shaping_weight < 0:
            raise ConfigError("prior_a and prior_b must be > 0 and shaping_weight >= 0")
        self.shaping_weight, self.shaping_share = shaping_weight, shaping_share
        self.prior = (prior_a, prior_b)
        self.progress = 0.0  # share of the search done (set_progress, by the loop)

    def _phase(self) -> float:
        """0 during the shaping phase, then rising linearly to 1 by the end of the search."""
        if self.progress < self.shaping_share or self.shaping_share >= 1:
            return 0.0
        return min(1.0, (self.progress - self.shaping_share) / (1 - self.shaping_share))

    def regularizer(self) -> Tensor:
        if not self._probs or self.progress >= self.shaping_share:
            return torch.zeros((), device=self._device())
        weight = self.shaping_weight * (1 - self.progress / max(self.shaping_share, _EPS))
        losses = [batch_shaping_loss(p, *self.prior) for p in self._probs.values()]
        return weight * torch.stack(losses).mean()

    def budget_loss(self, target_ratio: float) -> Tensor:
        return self._phase() * super().budget_loss(target_ratio)
