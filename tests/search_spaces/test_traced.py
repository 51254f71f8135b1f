"""Traced spaces: torchvision's classification models and a user's networks, found by tracing.

For every model the issue names: the units found, exact MACs and parameters at any widths
(against FlopCounterMode and the built network), and the extracted network computing what the
masked full network computes (and the supernet's masks the same).
"""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import search_spaces
from nas.cost.macs import measure_macs
from nas.extraction import extract, mask_channels
from nas.extraction.saving import load_model, save_model
from nas.extraction.slicing import spec_masks
from nas.supernet import Supernet
from search_spaces import SearchSpace
from search_spaces.errors import SpaceError, SpecError
from tests.conftest import slow_params

# model -> (units, frozen groups besides the network output), at 32x32 with 10 classes
EXPECTED = {
    "mobilenet_v2": (25, 0),
    "mobilenet_v3_small": (27, 0),
    "shufflenet_v2_x0_5": (18, 21),
    "efficientnet_b0": (40, 0),
    "mnasnet0_5": (25, 0),
    "regnet_x_400mf": (27, 0),
    "vgg11_bn": (10, 0),
    "densenet121": (120, 0),
    "squeezenet1_1": (25, 0),
    "resnet18": (12, 0),
    "resnext50_32x4d": (21, 0),
}
SLOW = {"densenet121", "vgg11_bn", "resnext50_32x4d", "efficientnet_b0"}
MODELS = slow_params(EXPECTED, SLOW)


def traced(name: str) -> SearchSpace:
    return search_spaces.create(f"torchvision:{name}", num_classes=10, input_size=(32, 32))


def group_widths(space: SearchSpace, seed: int) -> dict[str, int]:
    """Random widths in whole groups."""
    g = torch.Generator().manual_seed(seed)
    return {
        u.name: u.granularity
        * int(torch.randint(1, u.max_width // u.granularity + 1, (1,), generator=g))
        for u in space.units
    }


def group_order(space: SearchSpace, seed: int) -> dict[str, torch.Tensor]:
    """A random channel order per unit that moves whole groups."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for u in space.units:
        groups = torch.randperm(u.max_width // u.granularity, generator=g)
        out[u.name] = (groups[:, None] * u.granularity + torch.arange(u.granularity)).flatten()
    return out


def real_model(space: SearchSpace, seed: int) -> nn.Module:
    """The full network with random BN statistics, no dropout (outputs are deterministic)."""
    torch.manual_seed(seed)
    model = space.build()
    no_dropout(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
    return model.eval()


def no_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(getattr(m, "p", None), float):  # Dropout, StochasticDepth
            m.p = 0.0  # type: ignore[assignment]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / a.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("name", MODELS)
def test_units_macs_and_parameters_are_exact(name: str) -> None:
    space = traced(name)
    units, frozen = EXPECTED[name]
    assert len(space.units) == units
    listed = [g for g in space.frozen if g.reason != "network output"]
    assert len(listed) == frozen and all(g.reason and g.writers for g in listed)
    assert all(u.max_width % u.granularity == 0 for u in space.units)
    for widths in (space.full_widths(), space.uniform_widths(0.5), group_widths(space, 1)):
        model = space.build(widths)
        assert space.macs(widths) == measure_macs(model, (3, 32, 32))
        assert space.params(widths) == sum(p.numel() for p in model.parameters())
        one_hot = {u: torch.tensor(float(w), dtype=torch.float64) for u, w in widths.items()}
        assert int(space.expected_macs(one_hot)) == space.macs(widths)


@pytest.mark.parametrize("name", MODELS)
def test_the_extracted_network_computes_the_masked_network(name: str, tmp_path: Path) -> None:
    space = traced(name)
    model = real_model(space, 0)
    spec = space.spec(group_widths(space, 2))
    order = group_order(space, 3)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    small = extract(copy.deepcopy(model), spec, order).eval()
    assert space.macs(spec.widths) == measure_macs(small, (3, 32, 32))
    handles = mask_channels(model, space, spec_masks(spec, order))
    with torch.no_grad():
        masked, got = model(x), small(x)
    for h in handles:
        h.remove()
    assert relative(masked, got) <= 1e-5
    save_model(small, spec, tmp_path, torchscript=False)  # spec + state_dict, no pickle
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == set(small.state_dict())
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path)(x), got)
    supernet = Supernet(copy.deepcopy(model), space).eval()
    supernet.set_masks(spec_masks(spec, order))
    with torch.no_grad():
        assert relative(masked, supernet(x)) <= 1e-6


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "squeezenet1_1"])
def test_the_supernet_equals_the_extracted_network_in_training(name: str) -> None:
    """Batch statistics too: every switched-off channel reads as zero where it is read."""
    space = traced(name)
    model = real_model(space, 5)
    spec = space.spec(group_widths(space, 6))
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    small = extract(copy.deepcopy(model), spec).train()
    no_dropout(small)
    supernet = Supernet(copy.deepcopy(model), space).train()
    supernet.set_widths(dict(spec.widths))
    with torch.no_grad():
        assert relative(small(x), supernet(x)) <= 1e-4


def test_torchvision_resnet18_traced_equals_the_hand_written_space() -> None:
    for size in ((32, 32), (224, 224)):
        mine = search_spaces.create("torchvision:resnet18", num_classes=10, input_size=size)
        hand = search_spaces.create("resnet18", num_classes=10, input_size=size)

        def partition(space: SearchSpace) -> set[frozenset[str]]:
            groups: dict[str, set[str]] = {}
            for la in space.layers:
                if la.kind == "conv" and la.out_unit is not None:
                    groups.setdefault(la.out_unit, set()).add(la.name)
            return {frozenset(g) for g in groups.values()}

        assert partition(mine) == partition(hand)
        assert mine.macs() == hand.macs() and mine.params() == hand.params()
        assert mine.state_shapes == hand.state_shapes
        # the same widths by writer: equal MACs
        by_writer = {}
        for la in hand.layers:
            if la.kind == "conv" and la.out_unit is not None:
                by_writer[la.name] = la.out_unit
        widths = group_widths(hand, 8)
        mapped = {}
        for la in mine.layers:
            if la.kind == "conv" and la.out_unit is not None:
                mapped[la.out_unit] = widths[by_writer[la.name]]
        assert mine.macs(mapped) == hand.macs(widths)


def test_a_grouped_unit_keeps_whole_groups() -> None:
    space = traced("regnet_x_400mf")
    unit = next(u for u in space.units if u.granularity > 1)
    bad = {**space.full_widths(), unit.name: unit.granularity + 1}
    with pytest.raises(SpecError, match=f"multiple of {unit.granularity}"):
        space.check_widths(bad)
    assert all(w % space.granularity[u] == 0 for u, w in space.uniform_widths(0.37).items())


def test_shufflenet_freezes_its_shuffled_streams_with_the_reason() -> None:
    space = traced("shufflenet_v2_x0_5")
    reasons = [g.reason for g in space.frozen if g.reason != "network output"]
    assert sum("view reshapes the channel axis at stage" in r for r in reasons) == 19


def test_discovery_is_fast_and_macs_are_cheap() -> None:
    import time

    import torchvision  # noqa: F401  (imported outside the timing)

    start = time.perf_counter()
    space = search_spaces.create("torchvision:mobilenet_v2", num_classes=3, input_size=(40, 40))
    assert len(space.units) == 25
    assert time.perf_counter() - start < 5
    widths = space.uniform_widths(0.5)
    start = time.perf_counter()
    for _ in range(100):
        space.macs(widths)
    assert (time.perf_counter() - start) / 100 < 1e-3


# -- a user's own network -------------------------------------------------------------------------
USER_NET = textwrap.dedent(
    """
    import torch
    from torch import nn


    class SE(nn.Module):
        def __init__(self, c, inner):
            super().__init__()
            self.fc1 = nn.Conv2d(c, inner, 1)
            self.fc2 = nn.Conv2d(inner, c, 1)

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


    class Net(nn.Module):
        def __init__(self, num_classes=10, in_channels=3):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16))
            self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
            self.se = SE(16, 6)
            self.a = nn.Conv2d(16, 24, 3, padding=1)
            self.b = nn.Conv2d(16, 8, 1)
            self.bn = nn.BatchNorm2d(32)
            self.mix = nn.Conv2d(32, 16, 1)
            self.side = nn.Conv2d(32, 8, 1)
            self.head = nn.Linear(16 * 4 * 4, num_classes)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            x = self.se(self.dw(x))                       # depthwise and SE: coupled
            x = torch.cat([self.a(x), self.b(x)], 1)      # concatenation
            x = torch.relu(self.bn(x))                    # a BN over two units
            gate = torch.sigmoid(self.side(x)[:, :1])     # a slice: frozen, not guessed
            y = torch.relu(self.mix(x)) * gate
            y = nn.functional.adaptive_avg_pool2d(y, 4)
            return self.head(torch.flatten(y, 1))         # flatten: each channel 16 times


    def build(num_classes=10, in_channels=3):
        return Net(num_classes, in_channels)


    def no_options():
        return Net(1000, 3)


    def not_a_module(num_classes=10):
        return 42
    """
)


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_net.py"
    path.write_text(USER_NET)
    return path


def test_a_users_file_factory_is_traced_and_extracts_exactly(
    user_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    space = search_spaces.create("my_net.py:build", num_classes=5, input_size=(16, 16))
    assert space.name == f"{user_file.resolve()}:build"  # absolute: works from anywhere
    kinds = {la.name: la for la in space.layers}
    bn = kinds["bn"].inputs  # the concatenation's segments, each its own unit
    assert [s.channels for s in bn] == [24, 8] and [s.unit for s in bn] == ["a", "b"]
    assert kinds["head"].inputs == (search_spaces.layers.Segment("mix", 16, 16),)
    assert kinds["dw"].groups == 16 and kinds["dw"].out_unit == kinds["dw"].inputs[0].unit
    assert kinds["se.fc2"].out_unit == "stem.0"  # the excitation follows the unit it scales
    frozen = {g.writers: g.reason for g in space.frozen if g.reason != "network output"}
    assert list(frozen) == [("side",)] and "getitem" in frozen[("side",)]
    assert {u.name for u in space.units} == {"stem.0", "se.fc1", "a", "b", "mix"}
    # conv -> relu -> conv, no BN between: the consumer's input is masked
    assert set(space.input_masks) == {"se.fc2", "head"}
    for seed in range(3):
        widths = group_widths(space, seed)
        model = space.build(widths)
        assert space.macs(widths) == measure_macs(model, (3, 16, 16))
        assert space.params(widths) == sum(p.numel() for p in model.parameters())
    model = real_model(space, 1)
    spec = space.spec(group_widths(space, 4))
    x = torch.randn(3, 3, 16, 16)
    small = extract(copy.deepcopy(model), spec, group_order(space, 2)).eval()
    handles = mask_channels(model, space, spec_masks(spec, group_order(space, 2)))
    with torch.no_grad():
        assert relative(model(x), small(x)) <= 1e-5
    for h in handles:
        h.remove()
    monkeypatch.chdir(tmp_path.parent)  # the spec's name finds the file from elsewhere
    assert search_spaces.WidthSpec.from_dict(spec.to_dict()).widths == spec.widths


def test_a_module_factory_is_traced(user_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(user_file.parent))
    space = search_spaces.create("my_net:build", num_classes=4, input_size=(16, 16))
    assert space.num_classes == 4 and len(space.units) > 0


@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("torchvision:fasterrcnn_resnet50_fpn", (32, 32), "not a torchvision classification"),
        ("torchvision:nope", (32, 32), "unknown torchvision model 'nope'"),
        ("nosuch.module:f", (32, 32), "cannot import nosuch.module"),
        ("{file}:missing", (16, 16), "does not define missing"),
        ("{file}:not_a_module", (16, 16), "returned int, not an nn.Module"),
        ("{file}:no_options", (16, 16), "takes no num_classes and its output has 1000"),
        ("torchvision:inception_v3", (32, 32), "cannot run on 32x32 inputs"),
        ("torchvision:convnext_tiny", (32, 32), "has no prunable channels"),
    ],
)
def test_bad_traced_names_are_one_line(
    name: str, size: tuple[int, int], message: str, user_file: Path
) -> None:
    with pytest.raises((SpaceError, SpecError)) as info:
        search_spaces.create(name.format(file=user_file), num_classes=10, input_size=size)
    text = str(info.value)
    assert message in text and "\n" not in text


def test_a_data_dependent_branch_cannot_be_traced(tmp_path: Path) -> None:
    path = tmp_path / "branchy.py"
    path.write_text(
        textwrap.dedent(
            """
            from torch import nn

            class Net(nn.Module):
                def __init__(self, num_classes=10):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 8, 3)
                    self.fc = nn.Linear(8, num_classes)

                def forward(self, x):
                    if x.sum() > 0:
                        x = -x
                    return self.fc(self.conv(x).mean((2, 3)))
            """
        )
    )
    with pytest.raises(SpaceError, match=r"cannot trace .*branchy\.py:Net"):
        search_spaces.create(f"{path}:Net", num_classes=10, input_size=(8, 8))


def test_a_user_network_needs_an_input_size(user_file: Path) -> None:
    with pytest.raises(SpecError, match="no default input size"):
        search_spaces.create(f"{user_file}:build", num_classes=10)


def test_a_network_that_does_not_script_is_saved_traced(tmp_path: Path) -> None:
    path = tmp_path / "lambdas.py"
    path.write_text(
        textwrap.dedent(
            """
            from torch import nn

            class Net(nn.Module):
                def __init__(self, num_classes=10):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 8, 3)
                    self.bn = nn.BatchNorm2d(8)
                    self.act = lambda t: t.relu()  # TorchScript cannot compile this
                    self.fc = nn.Linear(8, num_classes)

                def forward(self, x):
                    return self.fc(self.act(self.bn(self.conv(x))).mean((2, 3)))
            """
        )
    )
    space = search_spaces.create(f"{path}:Net", num_classes=4, input_size=(8, 8))
    spec = space.spec({"conv": 5})
    model = space.build(spec.widths).eval()
    save_model(model, spec, tmp_path / "run")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(load_model(tmp_path / "run")(x), expected)
        assert torch.allclose(torch.jit.load(str(tmp_path / "run" / "model.ts"))(x), expected)


def test_a_changed_network_file_is_named_on_load(
    user_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = search_spaces.create(f"{user_file}:build", num_classes=3, input_size=(16, 16))
    spec = space.spec(space.uniform_widths(0.5))
    save_model(space.build(spec.widths), spec, tmp_path / "run", torchscript=False)
    data = json.loads((tmp_path / "run" / "arch.json").read_text())
    assert len(data["space_sha256"]) == 64
    load_model(tmp_path / "run")
    assert capsys.readouterr().err == ""
    user_file.write_text(USER_NET + "\n# edited\n")
    load_model(tmp_path / "run")
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"warning: {user_file} has changed since {tmp_path / 'run' / 'arch.json'} was written"
    ]


# -- rules that must freeze or mask, each on a small network -----------------------------------
RULE_NETS = textwrap.dedent(
    """
    import torch
    from torch import nn
    import torch.nn.functional as F


    class Base(nn.Module):
        def __init__(self, num_classes=4, c=8):
            super().__init__()
            self.conv1 = nn.Conv2d(3, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.fc = nn.Linear(c, num_classes)

        def head(self, x):
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.bn2(self.conv2(x)), 1), 1))


    class LayerScale(Base):  # a (C, 1, 1) parameter: frozen, and kept as trained
        def __init__(self, num_classes=4):
            super().__init__(num_classes)
            self.gamma = nn.Parameter(torch.rand(8, 1, 1) + 0.5)

        def forward(self, x):
            return self.head(self.bn1(self.conv1(x)) * self.gamma)


    class ViewedScale(Base):  # a (C,) parameter viewed as (C, 1, 1)
        def __init__(self, num_classes=4):
            super().__init__(num_classes)
            self.w = nn.Parameter(torch.rand(8) + 0.5)

        def forward(self, x):
            return self.head(self.bn1(self.conv1(x)) * self.w.view(-1, 1, 1))


    class MaxOverChannels(Base):  # torch.max over channels returns a tuple: frozen
        def forward(self, x):
            y = self.bn1(self.conv1(x)) - 1.0
            return self.head(y * torch.max(y, dim=1, keepdim=True)[0])


    class Divide(Base):  # 0 / 0 is not 0: a divisor's channels freeze
        def __init__(self, num_classes=4):
            super().__init__(num_classes)
            self.conv3 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn3 = nn.BatchNorm2d(8)

        def forward(self, x):
            return self.head(self.bn1(self.conv1(x)) / self.bn3(self.conv3(x)))


    class InPlace(Base):  # y.add_(1) not rebound: the readers of y see the result
        def forward(self, x):
            y = self.bn1(self.conv1(x))
            y.add_(1.0)
            return self.head(y)


    class Hardtanh(Base):  # Hardtanh(0.5, 2) moves 0 to 0.5
        def __init__(self, num_classes=4):
            super().__init__(num_classes)
            self.act = nn.Hardtanh(0.5, 2.0)

        def forward(self, x):
            return self.head(self.act(self.bn1(self.conv1(x))))


    class Tied(Base):  # a table layer's weight also used functionally: not cut
        def forward(self, x):
            y = self.bn1(self.conv1(x))
            att = torch.sigmoid(F.conv2d(x, self.conv1.weight, padding=1).mean(1, keepdim=True))
            return self.head(y * att)
    """
)
RULES = {  # network: (frozen writers, layers whose input is masked)
    "LayerScale": ({("conv1",)}, set()),
    "ViewedScale": ({("conv1",)}, set()),
    "MaxOverChannels": ({("conv1",)}, set()),
    "Divide": ({("conv1", "conv3")}, set()),
    "InPlace": (set(), {"conv2"}),
    "Hardtanh": (set(), {"conv2"}),
    "Tied": (set(), set()),
}


@pytest.mark.parametrize("net", RULES)
def test_what_no_rule_follows_is_frozen_and_extraction_stays_exact(
    net: str, tmp_path: Path
) -> None:
    path = tmp_path / "rule_nets.py"
    path.write_text(RULE_NETS)
    space = search_spaces.create(f"{path}:{net}", num_classes=4, input_size=(8, 8))
    frozen, masked = RULES[net]
    assert {g.writers for g in space.frozen if g.reason != "network output"} == frozen
    assert set(space.input_masks) == masked
    model = real_model(space, 0)
    spec = space.spec(space.uniform_widths(0.5))
    assert space.macs(spec.widths) == measure_macs(space.build(spec.widths), (3, 8, 8))
    x = torch.randn(4, 3, 8, 8)
    small = extract(copy.deepcopy(model), spec).eval()
    handles = mask_channels(model, space, spec_masks(spec))
    with torch.no_grad():
        assert relative(model(x), small(x)) <= 1e-6
    for h in handles:
        h.remove()
