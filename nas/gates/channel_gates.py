"""Per-channel gates: ``channel-gumbel`` (Herrmann et al. 2020) and ``scp`` (Kang & Han 2020).

Both decide, per unit, which groups of channels stay open (a group is ``group_size`` channels;
one channel for ``scp``), each open with its own probability ``p``. What the search needs of a
width strategy follows from these probabilities (:class:`ChannelGates`):

* **expected width** ``sum_g p_g * group_size``, differentiable (the MAC budget's input);
* **width choices** ``k * group_size`` for ``k = 1 .. G`` open groups, and the log-probability
  of each: the most probable gate configuration with exactly ``k`` open groups keeps the ``k``
  most probable ones, with log-probability ``sum_{top k} log p + sum_{rest} log(1 - p)``
  (normalised over ``k``). The
  budget projection picks the most probable widths inside the MAC band from these, so the
  delivered network is "the gates that are open (p > 0.5), brought to the band";
* **channel order**: each unit's groups from most to least probably open; at the end of the
  search the supernet's channels are permuted into it (function preserving), so a width ``w``
  keeps exactly the ``w`` most open channels, and extraction needs nothing new.

``channel-gumbel`` learns one logit per group (static gates), samples them hard with
straight-through gradients at a fixed temperature (their code: 1), starts them about 98 % open,
trains them jointly with the weights, and replaces the search's budget by its batch activation
loss ``(target - r)^2``, ``r`` the MAC-weighted share of the network the sampled gates keep (one
global target, as in their code), weighted by ``--budget-weight``.

``scp`` has no parameters of its own: a channel's probability of being switched off by BN
followed by ReLU comes from that BN's ``gamma`` and ``beta`` (BN output ~ N(beta, gamma^2):
``P(off) = Phi((threshold - beta) / |gamma|)``, :func:`bn_off_probability`), smoothed as their
code does, ``sigmoid(sharpness * (P(off) - floor))``. Relaxed Bernoulli keep-masks (temperature
0.5) are sampled from it each step and multiply the BN output; the BN parameters train with the
weights under the search's MAC budget on the expected widths (SCP itself has no MAC target), plus
their sparsity regulariser ``lambda * sum(beta + 2 |gamma|)`` when ``sparsity`` > 0; a channel
goes when the smoothed probability is > 0.5. Their code's constants (threshold 0.05, floor 0.95)
make the probability flat where a trained network starts (about 1e-4 for a channel that BN-ReLU
zeroes half the time), so a MAC budget on it cannot move the BN parameters; the defaults here
centre the same sigmoid on ``P(off) = 0.5`` (threshold 0, floor 0.5, sharpness 20), and
``--strategy-option threshold=0.05,floor=0.95`` gives theirs. A unit written by several BN
layers (a residual stream) averages their probabilities.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nas.errors import ConfigError
from nas.gates.base import GateStrategy, register_strategy
from nas.supernet import Supernet
from search_spaces import SearchSpace

__all__ = ["ChannelGates", "ChannelGumbel", "SoftChannelPruning", "bn_off_probability"]

_EPS = 1e-6


class ChannelGates(GateStrategy):
    """Gates on groups of channels, each open with probability ``p`` (see the module)."""

    bilevel = False

    def __init__(
        self, space: SearchSpace, choices: Mapping[str, Sequence[int]], *, group_size: int = 1
    ) -> None:
        super().__init__(space, choices)
        self.choices = self.choices_for(space, choices, group_size=group_size)
        self.group_size = group_size
        # channels per gate: the group size, in whole groups of a grouped convolution
        self.sizes = unit_group_sizes(space, group_size)
        self.groups = {u: space.max_widths[u] // self.sizes[u] for u in self.units}
        self._last: dict[str, Tensor] = {}

    @classmethod
    def choices_for(
        cls, space: SearchSpace, choices: Mapping[str, Sequence[int]], **options: Any
    ) -> dict[str, list[int]]:
        """Every multiple of the group size up to each unit's width (the search's width ratios
        do not apply: a gate opens or closes one group)."""
        sizes = unit_group_sizes(space, int(options.get("group_size", 1)))
        return {
            u.name: [k * sizes[u.name] for k in range(1, u.max_width // sizes[u.name] + 1)]
            for u in space.units
        }

    @abc.abstractmethod
    def keep_probs(self) -> dict[str, Tensor]:
        """Per unit, the probability that each group is open, ``(G,)``, differentiable."""

    @abc.abstractmethod
    def _group_masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        """Per unit, the mask value of each group ``(G,)`` in ``mode``."""

    def masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        out = {}
        probs = self.keep_probs() if mode == "discrete" else {}
        for u, m in self._group_masks(mode, tau).items():
            if mode == "discrete":
                m = _at_least_one(m, probs[u].detach())
            out[u] = m.repeat_interleave(self.sizes[u])
        self._last = out
        return out

    def expected_widths(self) -> dict[str, Tensor]:
        return {u: p.sum() * self.sizes[u] for u, p in self.keep_probs().items()}

    def choice_log_probs(self) -> dict[str, Tensor]:
        out = {}
        for u, p in self.keep_probs().items():
            q = torch.sort(p.detach().double(), descending=True).values.clamp(_EPS, 1 - _EPS)
            on, off = torch.cumsum(q.log(), 0), torch.cumsum((1 - q).log(), 0)
            # k = 1..G open: top k on, the rest off; normalised over k (the configurations of
            # that form), which leaves every comparison between choices as it was
            out[u] = torch.log_softmax(on + (off[-1] - off), 0).float()
        return out

    def discrete_widths(self) -> dict[str, int]:
        """The open groups (p > 0.5) of every unit, at least one."""
        return {
            u: max(1, int((p.detach() > 0.5).sum())) * self.sizes[u]
            for u, p in self.keep_probs().items()
        }

    def channel_order(self) -> dict[str, Tensor]:
        out = {}
        for u, p in self.keep_probs().items():
            g = self.sizes[u]
            groups = torch.argsort(p.detach().cpu(), descending=True, stable=True)
            out[u] = (groups[:, None] * g + torch.arange(g)[None, :]).flatten()
        return out

    def confidence(self) -> float:
        probs = [torch.maximum(p, 1 - p).detach() for p in self.keep_probs().values()]
        return float(torch.cat(probs).mean()) if probs else 1.0

    def entropy(self) -> Tensor:
        """Mean binary entropy of the gates in bits (1: undecided, 0: decided), differentiable."""
        parts = []
        for p in self.keep_probs().values():
            q = p.clamp(_EPS, 1 - _EPS)
            parts.append(-(q * q.log() + (1 - q) * (1 - q).log()).mean() / math.log(2))
        return torch.stack(parts).mean()

    def used_widths(self) -> dict[str, Tensor]:
        """Per unit, the width the last :meth:`gate` call kept (its masks' sum, carrying the
        straight-through gradient of hard samples)."""
        return {u: m.sum() for u, m in self._last.items()}


def unit_group_sizes(space: SearchSpace, group_size: int) -> dict[str, int]:
    """Per unit, the channels one gate opens and closes: ``group_size``, or its least common
    multiple with the unit's granularity (whole groups of a grouped convolution). Refused in one
    line where that does not divide the unit's width."""
    if group_size < 1:
        raise ConfigError(f"group_size must be >= 1, got {group_size}")
    sizes = {u.name: math.lcm(group_size, u.granularity) for u in space.units}
    uneven = [u.name for u in space.units if u.max_width % sizes[u.name]]
    if uneven:
        raise ConfigError(
            f"group_size {group_size} does not divide the width of unit {uneven[0]} "
            f"({space.max_widths[uneven[0]]} channels"
            + (
                f", in groups of {space.granularity[uneven[0]]}"
                if space.granularity[uneven[0]] > 1
                else ""
            )
            + "); choose a divisor of every unit's width"
        )
    return sizes


def open_logit(init_open: float, temperature: float) -> float:
    """The logit of gates starting ``init_open`` open; both options checked (one line)."""
    if not 0 < init_open < 1:
        raise ConfigError(f"init_open must be in (0, 1), got {init_open}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    return math.log(init_open / (1 - init_open))


def group_order(channel_order: Tensor, group_size: int) -> Tensor:
    """The order of a unit's groups from its channel order (whole groups, as
    :meth:`ChannelGates.channel_order` gives them)."""
    return channel_order.reshape(-1, group_size)[:, 0] // group_size


def _at_least_one(mask: Tensor, probs: Tensor) -> Tensor:
    """``mask`` with the most probable group opened if it closed all (a unit keeps a channel)."""
    if bool((mask > 0).any()):
        return mask
    out = torch.zeros_like(mask)
    out[int(probs.argmax())] = 1.0
    return out


def _binary_sample(logit: Tensor, mode: str, tau: float) -> Tensor:
    """Open-probability ``sigmoid(logit)`` gates: relaxed or straight-through hard samples
    (logistic noise, the difference of two Gumbels), the noise-free relaxation, or the mode."""
    if mode in ("sample", "hard"):
        u = torch.rand_like(logit).clamp(_EPS, 1 - _EPS)
        perturbed = logit + u.log() - (1 - u).log()
        soft = torch.sigmoid(perturbed / tau)
        if mode == "sample":
            return soft
        hard = (perturbed > 0).to(logit.dtype)
        return hard - soft.detach() + soft if torch.is_grad_enabled() else hard
    if mode == "relaxed":
        return torch.sigmoid(logit / tau)
    return (logit > 0).to(logit.dtype)


@register_strategy("channel-gumbel")
class ChannelGumbel(ChannelGates):
    """Static Gumbel gates on groups of channels with a batch activation loss (Herrmann et al.)."""

    name = "channel-gumbel"
    train_mode = "hard"
    own_budget = True

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
        start = open_logit(init_open, temperature)
        self.temperature = temperature
        self.logits = nn.ParameterList(
            nn.Parameter(torch.full((self.groups[u],), start)) for u in self.units
        )

    def keep_probs(self) -> dict[str, Tensor]:
        return {u: torch.sigmoid(lg) for u, lg in zip(self.units, self.logits, strict=True)}

    def _group_masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        # the temperature is the strategy's own (fixed, as in their code), not the search's
        return {
            u: _binary_sample(lg, mode, self.temperature)
            for u, lg in zip(self.units, self.logits, strict=True)
        }

    def budget_loss(self, target_ratio: float) -> Tensor:
        """The batch activation loss ``(target - r)^2``, ``r`` the MAC share the sampled gates
        keep (exact: the MAC formula is bilinear in the widths)."""
        used = self.used_widths() if self._last else self.expected_widths()
        r = self.space.expected_macs(used) / self.space.macs()
        return (target_ratio - r) ** 2

    def permute(self, order: Mapping[str, Tensor]) -> None:
        with torch.no_grad():
            for u, lg in zip(self.units, self.logits, strict=True):
                lg.copy_(lg[group_order(order[u], self.sizes[u]).to(lg.device)])


def bn_off_probability(bn: nn.BatchNorm2d | BnSlice, threshold: float = 0.0) -> Tensor:
    """``P(ReLU(y) <= threshold)`` per channel for BN output ``y ~ N(beta, gamma^2)``:
    ``Phi((threshold - beta) / |gamma|)``, differentiable in the BN parameters."""
    weight, bias = (bn.weight, bn.bias) if isinstance(bn, nn.BatchNorm2d) else bn
    gamma = weight.abs().clamp_min(_EPS)
    z = (threshold - bias) / gamma
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


BnSlice = tuple[Tensor, Tensor]  # a unit's channels of one BN layer: (gamma, beta)


BnSite = tuple[str, int, int]  # an affine BN layer and a unit's channels in it (start, end)


def unit_bn_sites(space: SearchSpace) -> dict[str, list[BnSite]]:
    """Per unit, every affine BN layer that normalises its channels: a BN of the unit alone, or
    the unit's segment of a BN over a concatenation. A unit that no BN normalises (a
    squeeze-excitation's inner width) has none."""
    out: dict[str, list[BnSite]] = {u.name: [] for u in space.units}
    for layer in space.layers:
        if layer.kind == "bn" and layer.bias:
            for unit, start, end in layer.unit_ranges():
                out[unit].append((layer.name, start, end))
    return out


def unit_bn_slices(
    supernet: Supernet, sites: Mapping[str, list[BnSite]]
) -> dict[str, list[BnSlice]]:
    """The (gamma, beta) of every site (:func:`unit_bn_sites`), differentiable."""
    out: dict[str, list[BnSlice]] = {}
    for unit, places in sites.items():
        out[unit] = []
        for name, start, end in places:
            bn = supernet.model.get_submodule(name)
            assert isinstance(bn, nn.BatchNorm2d)
            out[unit].append((bn.weight[start:end], bn.bias[start:end]))
    return out


@register_strategy("scp")
class SoftChannelPruning(ChannelGates):
    """SCP's soft masks from the BN-ReLU off probability, trained with the weights."""

    name = "scp"
    train_mode = "sample"

    def __init__(
        self,
        space: SearchSpace,
        choices: Mapping[str, Sequence[int]],
        *,
        temperature: float = 0.5,
        sharpness: float = 20.0,
        threshold: float = 0.0,
        floor: float = 0.5,
        sparsity: float = 0.0,
    ) -> None:
        super().__init__(space, choices, group_size=1)
        self._sites = unit_bn_sites(space)  # where each unit's BN parameters are
        if not any(la.kind == "bn" and la.bias for la in space.layers):
            raise ConfigError(f"scp reads BatchNorm layers, and {space.name} has none")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if sparsity < 0:
            raise ConfigError(f"sparsity must be >= 0, got {sparsity}")
        self.temperature, self.sharpness = temperature, sharpness
        self.threshold, self.floor, self.sparsity = threshold, floor, sparsity

    def _bns(self) -> dict[str, list[BnSlice]]:
        return unit_bn_slices(self.supernet, self._sites)

    def off_probs(self) -> dict[str, Tensor]:
        """Per unit, each channel's probability of being switched off by BN and ReLU,
        ``Phi((threshold - beta) / |gamma|)``, averaged over the unit's BN layers (no
        smoothing). A unit no BN normalises is never off."""
        return {
            u: torch.stack([bn_off_probability(bn, self.threshold) for bn in bns]).mean(0)
            if bns
            else self._never(u)
            for u, bns in self._bns().items()
        }

    def smoothed_off_probs(self) -> dict[str, Tensor]:
        """The smoothed probability every decision uses: ``sigmoid(sharpness * (P(off) -
        floor))`` per BN layer, averaged over the unit's BN layers (0 for a unit no BN
        normalises: it stays at full width)."""
        out = {}
        for u, bns in self._bns().items():
            probs = [
                torch.sigmoid(
                    self.sharpness * (bn_off_probability(bn, self.threshold) - self.floor)
                )
                for bn in bns
            ]
            out[u] = torch.stack(probs).mean(0) if probs else self._never(u)
        return out

    def _never(self, unit: str) -> Tensor:
        return torch.zeros(self.space.max_widths[unit], device=self._device())

    def keep_probs(self) -> dict[str, Tensor]:
        return {u: 1 - p for u, p in self.smoothed_off_probs().items()}

    def _group_masks(self, mode: str, tau: float) -> dict[str, Tensor]:
        out = {}
        for u, q in self.keep_probs().items():
            logit = q.clamp(_EPS, 1 - _EPS).log() - (1 - q).clamp(_EPS, 1 - _EPS).log()
            out[u] = q if mode == "relaxed" else _binary_sample(logit, mode, self.temperature)
        return out

    def regularizer(self) -> Tensor:
        if self.sparsity == 0:
            return torch.zeros((), device=self._device())
        terms = [
            (beta + 2 * gamma.abs()).sum() for bns in self._bns().values() for gamma, beta in bns
        ]
        return self.sparsity * torch.stack(terms).sum()

    def _device(self) -> torch.device:
        net = self.__dict__.get("_supernet")
        return next(net.parameters()).device if net is not None else torch.device("cpu")
