"""The conditional network a per-input strategy learned, as a standalone model.

:func:`conditional_network` turns the supernet and its gate networks into a plain ResNet whose
gated blocks (:class:`GatedBasicBlock`) run their gate network on the block input and compute
only the open channels: at batch size 1 the block's weights are sliced to those channels for
that input (fewer MACs, really skipped), at larger batches the closed channels are masked (the
same outputs; every image has its own channels, so nothing can be sliced for all of them). It
is saved as ``arch.json`` (the full space) + ``conditional.json`` (the gate settings) +
``model.pt`` (state_dict) + ``model.pt2`` (``torch.export``) + ``model.ts`` (TorchScript;
both run the gates with torch alone), and rebuilt by :func:`load_conditional`.

The gated units of the hand-written spaces with basic residual blocks (CIFAR ResNets,
ResNet-18/34) are supported so; the hand-written Bottleneck spaces are refused with one line.
A traced space's conditional network is a :class:`GatedNetwork`: its gates mask the closed
channels (per-image MACs counted from the open ones), saved the same way with the units it
gates.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.errors import ConfigError, WeightsError, first_line
from nas.extraction import save_model
from nas.gates.conditional import gate_network, gate_sites
from nas.io import atomic_write_text, load_state_dict_file
from nas.supernet import Supernet, recalibrate_bn
from search_spaces import SearchSpace, WidthSpec

__all__ = [
    "CONDITIONAL_FORMAT",
    "GatedBasicBlock",
    "GatedNetwork",
    "calibrate_gates",
    "conditional_macs",
    "conditional_network",
    "gate_macs",
    "gated_units",
    "load_conditional",
    "save_conditional",
]

CONDITIONAL_FORMAT = "channel-nas/conditional-1"


class GatedBasicBlock(nn.Module):
    """A basic residual block whose inner channels are opened per input by a gate network."""

    def __init__(self, block: nn.Module, gate: nn.Module, group_size: int) -> None:
        super().__init__()
        conv1, bn1, conv2, bn2 = block.conv1, block.bn1, block.conv2, block.bn2
        assert isinstance(conv1, nn.Conv2d) and isinstance(conv2, nn.Conv2d)
        assert isinstance(bn1, nn.BatchNorm2d) and isinstance(bn2, nn.BatchNorm2d)
        self.conv1: nn.Conv2d = conv1
        self.bn1: nn.BatchNorm2d = bn1
        self.conv2: nn.Conv2d = conv2
        self.bn2: nn.BatchNorm2d = bn2
        downsample = block.downsample
        self.downsample: nn.Module = (
            downsample if isinstance(downsample, nn.Module) else nn.Identity()
        )
        self.gate: nn.Module = gate
        self.group_size = group_size
        self.stride1, self.padding1 = _int(conv1.stride), _int(conv1.padding)
        self.stride2, self.padding2 = _int(conv2.stride), _int(conv2.padding)

    def train(self, mode: bool = True) -> GatedBasicBlock:
        """The block's layers in ``mode``; the gate network stays in eval mode (fine-tuning
        trains the weights under fixed gates: the gates' BN statistics do not move)."""
        super().train(mode)
        self.gate.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        open_groups = self.gate(x) > 0  # (N, G): the mode of each gate
        identity = self.downsample(x)
        if x.shape[0] == 1:
            groups = open_groups[0].nonzero().flatten()
            offsets = torch.arange(self.group_size, device=x.device)
            idx = (groups[:, None] * self.group_size + offsets[None, :]).flatten()
            if idx.numel() == 0:  # every channel closed: the branch sees zeros
                out = self.bn2(torch.zeros_like(identity))
            else:
                out = F.conv2d(
                    x,
                    self.conv1.weight.index_select(0, idx),
                    None,
                    self.stride1,
                    self.padding1,
                )
                bn = self.bn1
                out = F.batch_norm(
                    out,
                    _select(bn.running_mean, idx),
                    _select(bn.running_var, idx),
                    _select(bn.weight, idx),
                    _select(bn.bias, idx),
                    False,
                    0.0,
                    bn.eps,
                )
                out = F.relu(out)
                out = F.conv2d(
                    out,
                    self.conv2.weight.index_select(1, idx),
                    None,
                    self.stride2,
                    self.padding2,
                )
                out = self.bn2(out)
        else:
            mask = open_groups.repeat_interleave(self.group_size, 1).to(x.dtype)
            out = F.relu(self.bn1(self.conv1(x)) * mask[:, :, None, None])
            out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


def _int(value: Any) -> int:
    """A conv's stride or padding (square) as one int."""
    return int(value[0]) if isinstance(value, tuple) else int(value)


def _select(t: Tensor | None, idx: Tensor) -> Tensor:
    assert t is not None
    return t.index_select(0, idx)


class GatedNetwork(Supernet):
    """A traced space's conditional network: the full network with its BatchNorms masked
    (:class:`~nas.supernet.Supernet`; the network's own key names under ``model.``) and one gate
    network per gated unit (``gates.``), run on the input of the unit's first writer
    (:func:`~nas.gates.conditional.gate_sites`); the mode of each gate opens or closes its
    group of channels for each image, in every layer the unit reaches. Closed channels are
    masked, not skipped: its per-image MACs are counted from the open channels (as a runtime
    that skips them would pay), its latency is the full network's."""

    def __init__(
        self, model: nn.Module, space: SearchSpace, gates: Mapping[str, nn.Module], group: int
    ) -> None:
        super().__init__(model, space)
        self.gates = nn.ModuleDict({_key(u): g for u, g in gates.items()})
        self.units = list(gates)
        self.group_size = group
        sites = gate_sites(space, self.units)
        self.sites = {u: sites[u].module for u in self.units}
        for module in dict.fromkeys(self.sites.values()):
            units = [u for u in self.units if self.sites[u] == module]
            # a partial, not a closure: a deep copy (TorchScript tracing makes one) hooks the copy
            hook = functools.partial(GatedNetwork._gate, self, units)
            model.get_submodule(module).register_forward_pre_hook(hook)

    def _gate(self, units: list[str], module: nn.Module, args: tuple[Tensor, ...]) -> None:
        x = args[0]
        self.update_masks(
            {
                u: (self.gates[_key(u)](x) > 0).repeat_interleave(self.group_size, 1).to(x.dtype)
                for u in units
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        self.set_masks(None)  # each gate sets its unit's masks as the pass reaches it
        out: Tensor = self.model(x)
        return out

    def train(self, mode: bool = True) -> GatedNetwork:
        """The network's layers in ``mode``; the gate networks stay in eval mode (as in
        :class:`GatedBasicBlock`)."""
        super().train(mode)
        self.gates.eval()
        return self

    def gate_modules(self) -> list[tuple[str, nn.Module]]:
        return [(u, self.gates[_key(u)]) for u in self.units]


def _key(unit: str) -> str:
    return unit.replace(".", "_")


def gated_units(model: nn.Module, space: SearchSpace) -> list[tuple[str, nn.Module, int]]:
    """Every gated unit of a conditional network, its gate network and group size."""
    if isinstance(model, GatedNetwork):
        return [(u, g, model.group_size) for u, g in model.gate_modules()]
    unit_of = {u.name.rsplit(".", 1)[0]: u.name for u in space.units if u.kind == "block"}
    return [
        (unit_of[n], b.gate, b.group_size)
        for n, b in model.named_modules()
        if isinstance(b, GatedBasicBlock)
    ]


def conditional_network(supernet: Supernet, strategy: Any) -> nn.Module:
    """The standalone conditional network of ``supernet`` gated by ``strategy`` (a
    :class:`~nas.gates.ConditionalGates`), in eval mode; the supernet is not changed. The gate
    networks' parameters are frozen (``requires_grad`` off): fine-tuning trains the weights
    under the gates the search learned. Hand-written basic-block ResNets get
    :class:`GatedBasicBlock` (closed channels skipped at batch 1), traced spaces a
    :class:`GatedNetwork`."""
    space = supernet.space
    model = space.build()
    model.load_state_dict(supernet.model.state_dict())
    model.eval()
    if space.family == "traced":
        gates = {}
        for unit in strategy.gated:
            gate = copy.deepcopy(strategy.nets[_key(unit)]).eval()
            gates[unit] = gate.requires_grad_(False)
        return GatedNetwork(model, space, gates, strategy.group_size).eval()
    for unit in strategy.gated:
        block_name = strategy.sites[unit].module
        block = model.get_submodule(block_name)
        if not hasattr(block, "conv2") or hasattr(block, "conv3"):
            raise ConfigError(
                f"{space.name}: the conditional network of bottleneck blocks is not supported "
                "(basic-block spaces are)"
            )
        gate = copy.deepcopy(strategy.nets[unit.replace(".", "_")]).eval()
        gate.requires_grad_(False)
        model.set_submodule(block_name, GatedBasicBlock(block, gate, strategy.group_size))
    return model


@torch.no_grad()
def conditional_macs(
    model: nn.Module, space: SearchSpace, batches: Iterable[Any], device: torch.device | str
) -> Tensor:
    """Every image's MACs in the conditional network ``model`` over ``batches``, counted
    exactly from the channels its gates opened for that image (the space's MAC formula at the
    image's widths; the gate networks' own MACs are not included: see :func:`gate_macs`)."""
    index = {u.name: i for i, u in enumerate(space.units)}
    opened: dict[str, Tensor] = {}

    def recorder(unit: str, group: int) -> Any:
        def hook(module: nn.Module, args: Any, out: Tensor) -> None:
            opened[unit] = (out > 0).sum(1).to(torch.int64) * group

        return hook

    handles = [g.register_forward_hook(recorder(u, k)) for u, g, k in gated_units(model, space)]
    was = model.training
    model.eval()
    macs: list[Tensor] = []
    try:
        for x, _ in batches:
            model(x.to(device))
            full = torch.tensor(list(space.max_widths.values()), dtype=torch.int64)
            rows = full.repeat(x.shape[0], 1)
            for unit, width in opened.items():
                rows[:, index[unit]] = width.cpu()
            macs.append(space.batched_macs(rows))
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return torch.cat(macs)


CALIBRATION_STEPS = 24  # bisection steps of calibrate_gates at most
_MAX_OFFSET = 64.0  # a logit offset beyond which every gate is open (or closed) for good


@torch.no_grad()
def calibrate_gates(
    model: nn.Module,
    space: SearchSpace,
    batches: Iterable[Any],
    device: torch.device | str,
    target_ratio: float,
    tolerance: float,
    *,
    bn_batches: Sequence[tuple[Tensor, Tensor]] | None = None,
) -> tuple[float, float]:
    """Shift the threshold of every gate of the conditional network ``model`` by one logit
    offset (subtracted from the biases of the gate networks' last layers) so that its average
    MACs per image over ``batches`` land in the band ``target_ratio * (1 +- tolerance)`` of the
    full network's: the per-input analogue of the projection. A larger offset closes first, for
    every image, the gates whose logits are nearest to it. With ``bn_batches`` (training
    images), the BN statistics are re-estimated on them at every offset tried, before the MACs
    are counted (they move the later blocks' inputs, so their gates: the network is left with
    the statistics of the offset returned).

    Bisection on the offset (the average falls as it grows); no shift when the gates are in the
    band already, and, when no offset lands in it (a step of the average over the band), the
    one nearest to the target. Returns the offset and the average MAC ratio it gives."""
    lasts = []
    for _, gate, _ in gated_units(model, space):
        assert isinstance(gate, nn.Sequential)
        last = gate[-1]
        assert isinstance(last, nn.Linear) and last.bias is not None
        lasts.append((last.bias, last.bias.detach().clone()))
    full = float(space.macs())

    def ratio(offset: float) -> float:
        for bias, base in lasts:
            bias.copy_(base - offset)
        if bn_batches is not None:
            recalibrate_bn(model, bn_batches, device)
        return float(conditional_macs(model, space, batches, device).double().mean()) / full

    offset, value = _bisect(ratio, target_ratio, tolerance)
    ratio(offset)
    return offset, value


def _bisect(
    ratio: Callable[[float], float], target: float, tolerance: float
) -> tuple[float, float]:
    """An offset whose ``ratio`` (non-increasing in it) is within ``target * (1 +- tolerance)``,
    else the nearest one seen; 0 when that one is."""
    low, high = target * (1 - tolerance), target * (1 + tolerance)
    seen = [(0.0, ratio(0.0))]
    if low <= seen[0][1] <= high:
        return seen[0]
    step = 1.0 if seen[0][1] > high else -1.0  # close gates (too many MACs) or open them
    a, b = 0.0, step
    while abs(b) <= _MAX_OFFSET:  # bracket: a on the starting side, b past the band's near end
        seen.append((b, ratio(b)))
        if seen[-1][1] <= high if step > 0 else seen[-1][1] >= low:
            break
        a, b = b, 2 * b
    for _ in range(CALIBRATION_STEPS):
        if low <= seen[-1][1] <= high:
            break
        mid = (a + b) / 2
        seen.append((mid, ratio(mid)))
        if (seen[-1][1] > high) == (step > 0):  # still on the starting side
            a = mid
        else:
            b = mid
    return min(seen, key=lambda s: (not low <= s[1] <= high, abs(s[1] - target)))


def gate_macs(model: nn.Module, space: SearchSpace) -> int:
    """MACs of the gate networks of a conditional network for one input (their linear
    layers; the pooling and BN are not counted, as the space counts no BN)."""
    return sum(
        m.in_features * m.out_features
        for _, gate, _ in gated_units(model, space)
        for m in gate.modules()
        if isinstance(m, nn.Linear)
    )


def save_conditional(model: nn.Module, space: SearchSpace, group_size: int, out: Path) -> None:
    """``arch.json`` (the full space), ``model.pt``, ``model.pt2``, ``model.ts`` and
    ``conditional.json``."""
    save_model(model, space.spec(), out)
    meta: dict[str, Any] = {"format": CONDITIONAL_FORMAT, "group_size": group_size}
    if isinstance(model, GatedNetwork):
        meta["units"] = model.units
    else:
        meta["blocks"] = [n for n, m in model.named_modules() if isinstance(m, GatedBasicBlock)]
    atomic_write_text(out / "conditional.json", json.dumps(meta) + "\n")


def load_conditional(path: str | Path) -> nn.Module:
    """The conditional network saved in ``path`` (see :func:`save_conditional`), in eval mode."""
    d = Path(path)
    try:
        meta = json.loads((d / "conditional.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{d} holds no conditional network ({first_line(exc)})") from None
    if not isinstance(meta, dict) or meta.get("format") != CONDITIONAL_FORMAT:
        raise ConfigError(f"{d / 'conditional.json'} is not a {CONDITIONAL_FORMAT} file")
    spec = WidthSpec.load(d / "arch.json")
    space = spec.get_space()
    model = space.build()
    group = int(meta["group_size"])
    if "units" in meta:  # a traced space's GatedNetwork
        sites = gate_sites(space, list(meta["units"]))
        gates = {
            u: gate_network(site.in_channels, space.max_widths[u] // group, 0.0, pool=site.spatial)
            for u, site in sites.items()
        }
        model = GatedNetwork(model, space, gates, group)
    for name in meta.get("blocks", []):
        block = model.get_submodule(name)
        conv1 = block.conv1
        assert isinstance(conv1, nn.Conv2d)
        gate = gate_network(conv1.in_channels, conv1.out_channels // group, 0.0)
        model.set_submodule(name, GatedBasicBlock(block, gate, group))
    state = load_state_dict_file(d / "model.pt")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(
            f"{d / 'model.pt'} does not fit {d / 'conditional.json'}: {first_line(exc)}"
        ) from None
    return model.eval()
