"""Compound scaling (EfficientNet, Tan & Le 2019): depth, width and input resolution scaled
together, ``d = alpha^phi``, ``w = beta^phi``, ``r = gamma^phi`` with
``alpha * beta^2 * gamma^2 ~ 2`` (so the MACs scale by about ``2^phi``).

Here it shrinks a network to a MAC budget (``phi < 0``). For a CIFAR ResNet of ``n`` blocks per
stage at ``R x R`` inputs (the spaces whose depth can change: :func:`depth_of`):

* blocks per stage ``n' = max(1, round(n * alpha^phi))`` (``resnet{6n'+2}``, same shortcuts);
* input side ``R' = max(MIN_SIDE, round(R * gamma^phi))`` (the images are resized to it);
* every unit's width at one ratio, the one that lands the network on the budget: depth and
  resolution move in steps, so the width absorbs what they leave, and ``phi`` is the one whose
  width stays closest to ``beta^phi`` (:func:`solve`). The multipliers delivered (``depth``,
  ``width``, ``resolution``) are reported beside ``phi``.

:data:`GRID`: the (alpha, beta, gamma) candidates with ``alpha * beta^2 * gamma^2 = 2`` (beta
solved for each alpha and gamma, kept where it is at least 1) that ``nas scale`` trains briefly and
judges on the validation split, as the paper grid-searches them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import search_spaces
from nas.errors import ConfigError
from search_spaces import SearchSpace, WidthSpec
from search_spaces.cifar_resnet import cifar_name

__all__ = ["GRID", "MIN_SIDE", "Multipliers", "Scaled", "depth_of", "grid", "solve"]

MIN_SIDE = 8  # the smallest input side compound scaling goes to
ALPHAS = (1.0, 1.2, 1.5, 2.0)
GAMMAS = (1.0, 1.15, 1.3)


@dataclass(frozen=True)
class Multipliers:
    """The compound coefficients: depth ``alpha``, width ``beta``, resolution ``gamma``."""

    alpha: float
    beta: float
    gamma: float

    @property
    def flops_base(self) -> float:
        """``alpha * beta^2 * gamma^2``: the MACs grow by this per unit of ``phi``."""
        return self.alpha * self.beta**2 * self.gamma**2

    def label(self) -> str:
        return f"alpha {self.alpha:g}, beta {self.beta:.3f}, gamma {self.gamma:g}"


def grid(
    alphas: tuple[float, ...] = ALPHAS, gammas: tuple[float, ...] = GAMMAS
) -> list[Multipliers]:
    """The candidates with ``alpha * beta^2 * gamma^2 = 2`` and every multiplier at least 1."""
    out = []
    for a in alphas:
        for g in gammas:
            b = math.sqrt(2.0 / (a * g * g))
            if b >= 1.0:
                out.append(Multipliers(a, round(b, 4), g))
    return out


GRID = grid()


@dataclass(frozen=True)
class Scaled:
    """A compound-scaled network: its spec (space of the new depth, input size, widths), the
    ``phi`` and multipliers that made it, and the multipliers it has in effect."""

    spec: WidthSpec
    multipliers: Multipliers
    phi: float
    depth: float  # blocks per stage, scaled / base
    width: float  # the common width ratio
    resolution: float  # input side, scaled / base

    def describe(self) -> dict[str, float | str | int]:
        space = self.spec.get_space()
        return {
            "alpha": self.multipliers.alpha,
            "beta": self.multipliers.beta,
            "gamma": self.multipliers.gamma,
            "phi": round(self.phi, 4),
            "space": space.name,
            "input_side": space.input_size[0],
            "depth_multiplier": round(self.depth, 4),
            "width_multiplier": round(self.width, 4),
            "resolution_multiplier": round(self.resolution, 4),
        }


def depth_of(space: SearchSpace) -> tuple[int, str]:
    """``(blocks per stage, shortcut option)`` of a space whose depth can change (a CIFAR
    ResNet); one line for any other."""
    if getattr(space, "family", None) != "cifar_resnet":
        raise ConfigError(
            f"nas scale changes the depth of a CIFAR ResNet (blocks per stage: resnet20, "
            f"resnet56_b, ...); the depth of {space.name} cannot change"
        )
    depth = int(getattr(space, "depth"))  # noqa: B009
    return (depth - 2) // 6, str(getattr(space, "shortcut"))  # noqa: B009


def _at(base: SearchSpace, m: Multipliers, phi: float) -> SearchSpace:
    """The space of depth ``alpha^phi`` and side ``gamma^phi`` (full width)."""
    n, shortcut = depth_of(base)
    blocks = max(1, round(n * m.alpha**phi))
    side = max(MIN_SIDE, round(base.input_size[0] * m.gamma**phi))
    return search_spaces.create(
        cifar_name(6 * blocks + 2, shortcut),
        num_classes=base.num_classes,
        in_channels=base.in_channels,
        input_size=(side, round(side * base.input_size[1] / base.input_size[0])),
    )


def solve(base: SearchSpace, m: Multipliers, target_macs: float, tolerance: float) -> Scaled:
    """The compound-scaled network of ``base`` within ``target * (1 +- tolerance)`` MACs whose
    width ratio keeps closest to ``beta^phi`` (see the module), or one line saying why none is.

    ``phi`` runs from 0 down in steps of 0.01; each step's depth and side give a space whose
    uniform width of the target MACs is found once; the step whose ``phi * log(beta)`` lies
    nearest that width's logarithm wins (the first on a tie: the mildest scaling)."""
    full = base.macs()
    if not 0 < target_macs <= full * (1 + tolerance):
        raise ConfigError(
            f"nas scale shrinks a network: the target must be positive and at most the full "
            f"{full:,} MACs, got {target_macs:,.0f}"
        )
    n0, _ = depth_of(base)
    fitted: dict[str, WidthSpec | None] = {}
    best: tuple[float, Scaled] | None = None
    for step in range(801):  # phi from 0 down to -8
        phi = -step / 100
        space = _at(base, m, phi)
        key = f"{space.name}@{space.input_size}"
        if key not in fitted:
            fitted[key] = _uniform_at(space, target_macs, tolerance)
        spec = fitted[key]
        if spec is None:
            continue
        width = _ratio(spec)
        gap = abs(math.log(width) - phi * math.log(m.beta))
        if best is None or gap < best[0] - 1e-12:
            n1, _ = depth_of(space)
            scaled = Scaled(spec, m, phi, n1 / n0, width, space.input_size[0] / base.input_size[0])
            best = (gap, scaled)
    if best is None:
        raise ConfigError(
            f"no compound scaling of {base.name} ({m.label()}) lands within {tolerance:.0%} of "
            f"{target_macs:,.0f} MACs (widen --tolerance or change the target)"
        )
    return best[1]


def _uniform_at(space: SearchSpace, target: float, tolerance: float) -> WidthSpec | None:
    """The uniform-width spec of ``space`` nearest ``target`` MACs, if within the tolerance."""
    if space.macs() < target * (1 - tolerance):
        return None
    spec = space.spec(space.uniform_widths_for_macs(min(1.0, target / space.macs())))
    return spec if abs(spec.macs() / target - 1) <= tolerance else None


def _ratio(spec: WidthSpec) -> float:
    """The common width ratio of a uniform-width spec (its channels over the full ones)."""
    units = spec.get_space().units
    return sum(spec.widths[u.name] for u in units) / sum(u.max_width for u in units)
