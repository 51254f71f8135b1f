"""The standalone conditional network: sliced per image at batch size 1, its threshold
calibrated into the MAC band, saved and reloaded."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from nas.errors import ConfigError
from nas.gates import ConditionalGumbel
from nas.gates.conditional import open_shares
from nas.gates.deploy import (
    GatedBasicBlock,
    calibrate_gates,
    conditional_macs,
    conditional_network,
    gate_macs,
    load_conditional,
    save_conditional,
)
from nas.supernet import Supernet
from tests.conftest import small_space
from tests.nas.conftest import choices_of, prepared, random_batches

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _gated(name: str = "resnet20", group_size: int = 1) -> tuple[Supernet, ConditionalGumbel]:
    space = small_space(name, num_classes=4)
    supernet = Supernet(prepared(space), space)
    strategy = ConditionalGumbel(space, choices_of(space), group_size=group_size, init_open=0.6)
    strategy.attach(supernet)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for net in strategy.nets.values():
            for m in net.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g))
    for net in strategy.nets.values():
        net.eval()
    return supernet, strategy


TRACED = [  # an SE block (input-masked layers), linear writers
    ("torchvision:mobilenet_v3_small", 1),
    ("torchvision:vgg11_bn", 2),
]


# BNs over concatenations: densenet121
@pytest.mark.parametrize(
    ("name", "group_size"),
    [("resnet20", 1), ("resnet20_b", 4), *TRACED, ("torchvision:densenet121", 1)],
)
def test_the_conditional_network_computes_what_the_gated_supernet_computes(
    name: str, group_size: int, tmp_path: Path
) -> None:
    supernet, strategy = _gated(name, group_size)
    space = supernet.space
    x = torch.randn(
        5, space.in_channels, *space.input_size, generator=torch.Generator().manual_seed(2)
    )
    supernet.eval()
    with torch.no_grad():
        strategy.gate("discrete", 1.0)
        reference = supernet(x)
        supernet.set_masks(None)
    model = conditional_network(supernet, strategy)
    save_conditional(model, space, group_size, tmp_path / "c")
    scripted = torch.jit.load(str(tmp_path / "c" / "model.ts"))
    loaded = load_conditional(tmp_path / "c")
    with torch.no_grad():
        assert torch.allclose(model(x), reference, atol=1e-5)  # a batch: masked channels
        assert torch.allclose(scripted(x), reference, atol=1e-5)
        assert torch.allclose(loaded(x), reference, atol=1e-5)
        for i in range(5):  # one image: the weights sliced to its open channels
            one = x[i : i + 1]
            assert torch.allclose(model(one)[0], reference[i], atol=1e-4)
            assert torch.allclose(scripted(one)[0], reference[i], atol=1e-4)
            assert torch.allclose(loaded(one)[0], reference[i], atol=1e-4)


def test_a_directory_without_a_conditional_network_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no conditional network"):
        load_conditional(tmp_path)


@pytest.mark.parametrize(("name", "group_size"), [("resnet20", 1), ("resnet20_b", 4), *TRACED])
def test_per_image_macs_of_the_conditional_network_are_the_gated_supernets(
    name: str, group_size: int
) -> None:
    """``conditional_macs`` (what metrics.json reports for a delivered conditional network)
    counts each image's MACs as the supernet's per-image count does (itself checked against
    FlopCounterMode in test_conditional.py)."""
    supernet, strategy = _gated(name, group_size)
    space = supernet.space
    x = torch.randn(
        6, space.in_channels, *space.input_size, generator=torch.Generator().manual_seed(3)
    )
    batches = [(x[:4], torch.zeros(4)), (x[4:], torch.zeros(2))]
    _, expected = open_shares(supernet, strategy, batches, torch.device("cpu"))
    model = conditional_network(supernet, strategy)
    got = conditional_macs(model, space, batches, torch.device("cpu"))
    assert torch.equal(got, expected)
    assert bool((got < space.macs()).any())  # some channels really closed
    linear = [
        m for net in strategy.nets.values() for m in net.modules() if isinstance(m, torch.nn.Linear)
    ]
    assert gate_macs(model, space) == sum(m.in_features * m.out_features for m in linear)


def test_fine_tuning_the_conditional_network_leaves_its_gates_as_learned() -> None:
    """The delivered conditional network is fine-tuned under the gates the search learned: the
    gate networks stay in eval mode and no optimiser step (weight decay included) moves them."""
    supernet, strategy = _gated()
    space = supernet.space
    model = conditional_network(supernet, strategy)
    gates = {k: v.clone() for k, v in model.state_dict().items() if ".gate." in k}
    weights = {k: v.clone() for k, v in model.state_dict().items() if ".gate." not in k}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    assert all(not b.gate.training for b in model.modules() if isinstance(b, GatedBasicBlock))
    x = torch.randn(8, space.in_channels, *space.input_size)
    y = torch.randint(0, 4, (8,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in gates.items())
    assert any(not torch.equal(state[k], v) for k, v in weights.items())


def test_a_calibrated_threshold_brings_the_average_macs_into_the_band() -> None:
    """One logit offset for every gate of a conditional network: a positive one for a smaller
    target (gates close), a negative one for a larger target, none when its gates are in the band
    already; the network keeps the gates (and, with BN statistics re-estimated at every offset
    tried on other images, those statistics) of the offset returned."""
    supernet, strategy = _gated()
    space = supernet.space
    batches = random_batches(space)
    cpu = torch.device("cpu")
    model = conditional_network(supernet, strategy)
    macs = conditional_macs(model, space, batches, cpu)
    trained = float(macs.double().mean()) / space.macs()
    assert calibrate_gates(model, space, batches, cpu, trained, 0.02) == (0.0, trained)
    for (target, sign), recalibrate in itertools.product(
        ((0.8 * trained, 1), ((1 + trained) / 2, -1)), (False, True)
    ):
        model = conditional_network(supernet, strategy)
        bn_batches = batches[:1] if recalibrate else None
        offset, ratio = calibrate_gates(
            model, space, batches, cpu, target, 0.02, bn_batches=bn_batches
        )
        assert abs(ratio / target - 1) <= 0.02 and offset * sign > 0
        kept = conditional_macs(model, space, batches, cpu).double().mean()
        assert float(kept) / space.macs() == pytest.approx(ratio, rel=1e-12)
