"""Input-conditional gates: batch shaping, per-image MACs, and the static pruning they give."""

from __future__ import annotations

import pytest
import torch
from scipy.special import betainc

from nas.cost import measure_macs
from nas.errors import ConfigError
from nas.extraction import extract
from nas.gates import BatchShaping, ConditionalGumbel
from nas.gates.conditional import batch_shaping_loss, beta_cdf, open_shares
from nas.gates.deploy import conditional_macs, conditional_network
from nas.supernet import Supernet
from nas.width_search import SearchConfig
from tests.conftest import small_space
from tests.nas.conftest import choices_of, prepared, random_batches

pytestmark = pytest.mark.usefixtures("one_thread")


def test_batch_shaping_loss_equals_a_hand_computation() -> None:
    probs = torch.tensor([[0.9, 0.2], [0.1, 0.6], [0.5, 0.3]])
    loss = batch_shaping_loss(probs, 0.6, 0.4)
    manual = 0.0
    for g in range(2):
        values = sorted(probs[:, g].tolist())
        manual += sum((betainc(0.6, 0.4, v) - (i + 1) / 4) ** 2 for i, v in enumerate(values))
    assert float(loss) == pytest.approx(manual / 2, rel=1e-5)


def test_beta_cdf_gradient_is_the_density() -> None:
    x = torch.tensor([0.2, 0.5, 0.8], dtype=torch.float64, requires_grad=True)
    beta_cdf(x, 0.6, 0.4).sum().backward()
    h = 1e-6
    numeric = (
        betainc(0.6, 0.4, x.detach().numpy() + h) - betainc(0.6, 0.4, x.detach().numpy() - h)
    ) / (2 * h)
    assert torch.allclose(x.grad, torch.as_tensor(numeric), rtol=1e-4)  # type: ignore[arg-type]


def _conditional(
    cls: type = ConditionalGumbel, name: str = "resnet20"
) -> tuple[Supernet, ConditionalGumbel]:
    space = small_space(name, num_classes=4)
    supernet = Supernet(prepared(space), space)
    strategy = cls(space, choices_of(space), init_open=0.6)
    strategy.attach(supernet)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # gates that differ between images
        for net in strategy.nets.values():
            for m in net.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g))
    return supernet, strategy


@pytest.mark.parametrize(
    "name",
    # a traced space's gates read each unit's first writer: an SE block's input-masked layers,
    # linear writers of a VGG head
    ["resnet20", "torchvision:mobilenet_v3_small", "torchvision:vgg11_bn"],
)
def test_per_image_macs_are_those_of_the_network_that_computes_each_image(name: str) -> None:
    """For each image: the network with exactly the channels its gates opened (extracted,
    really smaller) gives the conditional network's output, and FlopCounterMode counts the MACs
    reported for that image."""
    supernet, strategy = _conditional(name=name)
    space = supernet.space
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, space.in_channels, *space.input_size, generator=g)
    _, macs = open_shares(supernet, strategy, [(x, torch.zeros(4))], torch.device("cpu"))
    masks = {u: m.clone() for u, m in strategy._last.items()}
    supernet.eval()
    with torch.no_grad():
        strategy.gate("discrete", 1.0)
        reference = supernet(x)
        supernet.set_masks(None)
    for i in range(4):
        widths, order = dict(space.max_widths), {}
        for u in space.units:
            m = masks[u.name][i] if u.name in masks else torch.ones(u.max_width)
            widths[u.name] = int(m.sum())
            order[u.name] = torch.argsort(m, descending=True, stable=True)
        small = extract(supernet.model, space.spec(widths), order).eval()
        with torch.no_grad():
            assert torch.allclose(small(x[i : i + 1])[0], reference[i], atol=1e-4)
        assert measure_macs(small, (space.in_channels, *space.input_size)) == int(macs[i])
    assert len({int(m) for m in macs}) > 1  # the gates depend on the image


def test_only_block_internal_units_are_gated_and_streams_keep_one_choice() -> None:
    space = small_space("resnet20_b", num_classes=4)
    strategy = BatchShaping(space, choices_of(space))
    for unit in space.units:
        if unit.kind == "block":
            assert unit.name in strategy.gated
        else:
            assert strategy.choices[unit.name] == [unit.max_width]


def test_batch_shaping_shapes_first_then_pulls_to_the_target() -> None:
    supernet, strategy = _conditional(BatchShaping)
    space = supernet.space
    x = torch.randn(8, space.in_channels, *space.input_size)
    strategy.set_progress(0.1)
    strategy.gate("hard", 1.0)
    supernet.train()
    supernet(x)
    shaping, budget = strategy.regularizer().detach(), strategy.budget_loss(0.3).detach()
    assert float(shaping) > 0 and float(budget) == 0
    strategy.set_progress(0.9)
    shaping, budget = strategy.regularizer().detach(), strategy.budget_loss(0.3).detach()
    assert float(shaping) == 0 and float(budget) > 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategy": "conditional-gumbel", "from_scratch": True}, "add --static"),
        ({"strategy": "width-gumbel", "static": True}, "static already"),
        ({"strategy": "channel-gumbel", "calibrate_gates": False}, "has none"),
        ({"strategy": "batch-shaping", "static": True, "calibrate_gates": False}, "--static"),
    ],
)
def test_per_input_strategies_are_refused_where_they_cannot_apply(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        SearchConfig(**changes).validate()  # type: ignore[arg-type]


def test_per_image_counting_after_a_static_pass_on_a_space_with_streams() -> None:
    """resnet20_b has ungated residual streams: the static masks of an earlier (frozen) pass must
    not enter the per-image count (the first CIFAR-10 run of batch shaping hit this)."""
    space = small_space("resnet20_b", num_classes=4)
    supernet = Supernet(prepared(space), space)
    strategy = BatchShaping(space, choices_of(space))
    strategy.attach(supernet)
    x = torch.randn(4, space.in_channels, *space.input_size)
    shares, _ = open_shares(supernet, strategy, [(x, torch.zeros(4))], torch.device("cpu"))
    strategy.freeze(shares, 0.5)
    strategy.gate("discrete", 1.0)  # a static pass: 1-D masks for every unit
    supernet.set_masks(None)
    strategy.frozen = None
    _, macs = open_shares(supernet, strategy, [(x, torch.zeros(4))], torch.device("cpu"))
    assert macs.shape == (4,) and bool((macs > 0).all())


def test_a_discrete_pass_gates_with_the_running_statistics_as_the_deployed_network() -> None:
    """The gate networks' BatchNorm learns in the training steps only: a discrete pass (the
    search's evaluation, BN recalibration, open shares, --static) uses its running statistics
    and leaves them, so it opens, per image, the gates the deployed conditional network opens."""
    supernet, strategy = _conditional()
    space = supernet.space
    batches = random_batches(space)
    cpu = torch.device("cpu")
    before = {k: v.clone() for k, v in strategy.nets.state_dict().items()}
    _, macs = open_shares(supernet, strategy, batches, cpu)
    after = strategy.nets.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    model = conditional_network(supernet, strategy)
    assert torch.equal(conditional_macs(model, space, batches, cpu), macs)
    supernet.train()
    strategy.gate("hard", 1.0)  # a training step's gates: their BatchNorm learns
    supernet(batches[0][0])
    after = strategy.nets.state_dict()
    assert not all(torch.equal(after[k], v) for k, v in before.items())
