"""The supernet: masked BN layers, width masks that reproduce extracted networks, the
function-preserving channel permutation and BN recalibration."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import search_spaces
from nas.extraction import extract, permute_channels
from nas.importance import channel_order
from nas.supernet import (
    MaskedBatchNorm2d,
    Supernet,
    make_maskable,
    nested_masks,
    recalibrate_bn,
    width_choices,
)
from search_spaces import SearchSpace
from tests.conftest import random_widths, randomize_bn, small_space


def in_shape(space: SearchSpace) -> tuple[int, int, int]:
    return (space.in_channels, *space.input_size)


def prepared(space: SearchSpace, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = space.build()
    randomize_bn(model, seed, in_shape(space))
    return model


def tiny_resnet50() -> SearchSpace:
    return search_spaces.create("resnet50", num_classes=5, in_channels=3, input_size=(12, 12))


# -- small helpers -------------------------------------------------------------------------------
def test_width_choices_in_multiples() -> None:
    assert width_choices(64, (0.1, 0.3, 0.5, 1.0), multiple=8) == [8, 16, 32, 64]
    assert width_choices(20, (0.5, 1.0), multiple=8) == [8, 20]  # the maximum stays a choice


def test_width_choices_and_nested_masks() -> None:
    assert width_choices(16, (0.1, 0.2, 0.5, 1.0)) == [2, 3, 8, 16]
    assert width_choices(4, (0.01, 0.1, 0.2, 1.0)) == [1, 4]  # at least 1, deduplicated
    masks = nested_masks([1, 3, 4], 4)
    assert torch.equal(masks, torch.tensor([[1.0, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]))


# -- make_maskable -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet20_b", "resnet18"])
def test_make_maskable_keeps_the_state_dict_and_the_function(name: str) -> None:
    space = small_space(name)
    model = prepared(space)
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(2, *in_shape(space))
    with torch.no_grad():
        reference = model(x)
    by_unit = make_maskable(model, space)
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert set(by_unit) == {u.name for u in space.units}
    bn_layers = [la for la in space.layers if la.kind == "bn" and la.out_unit is not None]
    assert sum(len(v) for v in by_unit.values()) == len(bn_layers)
    for layer in bn_layers:
        module = model.get_submodule(layer.name)
        assert isinstance(module, MaskedBatchNorm2d)
        assert any(module is bn for bn in by_unit[str(layer.out_unit)])
        assert not module.training  # mode kept (randomize_bn left the model in eval mode)
    with torch.no_grad():
        assert torch.equal(model(x), reference)  # no mask: the same network
    # idempotent: a second call reuses the masked layers
    again = make_maskable(model, space)
    assert all(a is b for u in again for a, b in zip(again[u], by_unit[u], strict=True))


# -- MaskedBatchNorm2d -----------------------------------------------------------------------------
def bn_pair(
    c: int, *, affine: bool = True, momentum: float | None = 0.1
) -> tuple[nn.BatchNorm2d, MaskedBatchNorm2d]:
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(c, affine=affine, momentum=momentum)
    with torch.no_grad():
        if affine:
            ref.weight.copy_(torch.rand(c) + 0.5)
            ref.bias.copy_(torch.randn(c))
        assert ref.running_mean is not None and ref.running_var is not None
        ref.running_mean.copy_(torch.randn(c))
        ref.running_var.copy_(torch.rand(c) + 0.5)
    masked = MaskedBatchNorm2d(c, affine=affine, momentum=momentum)
    masked.load_state_dict(ref.state_dict())
    return ref, masked


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.allclose(sa[k].float(), sb[k].float(), atol=1e-6, rtol=1e-6), k


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("kind", ["binary", "relaxed"])
def test_masked_bn_equals_bn_times_mask(affine: bool, momentum: float | None, kind: str) -> None:
    c = 6
    ref, masked = bn_pair(c, affine=affine, momentum=momentum)
    g = torch.Generator().manual_seed(1)
    mask = torch.tensor([1.0, 1, 0, 1, 0, 0]) if kind == "binary" else torch.rand(c, generator=g)
    masked.mask = mask
    for training in (True, True, False):  # two steps of running-stat updates, then eval
        ref.train(training)
        masked.train(training)
        x = torch.randn(4, c, 3, 3, generator=g, requires_grad=True)
        x2 = x.detach().clone().requires_grad_(True)
        expected = ref(x) * mask.view(1, -1, 1, 1)
        out = masked(x2)
        assert torch.allclose(out, expected, atol=1e-5, rtol=1e-5)
        assert_same_state(ref, masked)  # running mean/var and num_batches_tracked too
        # the same gradients flow into the input and the affine parameters
        w = torch.randn(out.shape, generator=g)
        (expected * w).sum().backward()
        (out * w).sum().backward()
        assert x.grad is not None and x2.grad is not None
        assert torch.allclose(x.grad, x2.grad, atol=1e-5, rtol=1e-5)
        if affine:
            for p_ref, p in zip(ref.parameters(), masked.parameters(), strict=True):
                assert p_ref.grad is not None and p.grad is not None
                assert torch.allclose(p_ref.grad, p.grad, atol=1e-5, rtol=1e-5)
                p_ref.grad, p.grad = None, None
    assert masked.num_batches_tracked is not None and int(masked.num_batches_tracked) == 2


def test_masked_bn_per_sample_masks() -> None:
    c = 5
    ref, masked = bn_pair(c)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, c, 4, 4, generator=g)
    mask = torch.rand(3, c, generator=g)
    masked.mask = mask
    for training in (True, False):
        ref.train(training)
        masked.train(training)
        out = masked(x)
        assert torch.allclose(out, ref(x) * mask[:, :, None, None], atol=1e-6)
        assert_same_state(ref, masked)
    # sample i is switched off where its own mask is 0
    masked.mask = torch.eye(3, c)
    out = masked(x)
    assert torch.all(out[0, 1:] == 0) and torch.all(out[1, 0] == 0) and torch.any(out[1, 1] != 0)


def test_masked_bn_without_mask_is_plain_bn() -> None:
    ref, masked = bn_pair(4)
    x = torch.randn(2, 4, 3, 3)
    for training in (True, False):
        ref.train(training)
        masked.train(training)
        assert torch.equal(masked(x), ref(x))
        assert_same_state(ref, masked)


# -- the supernet at fixed widths is the extracted network -----------------------------------------
@pytest.mark.parametrize(
    ("name", "seed"), [("resnet20", 0), ("resnet20_b", 1), ("resnet20_b", 2), ("resnet18", 3)]
)
def test_supernet_at_widths_equals_the_extracted_network(name: str, seed: int) -> None:
    space = small_space(name)
    _check_supernet_equals_extracted(space, seed)


def test_supernet_at_widths_equals_the_extracted_network_bottleneck() -> None:
    _check_supernet_equals_extracted(tiny_resnet50(), 4)


def _check_supernet_equals_extracted(space: SearchSpace, seed: int) -> None:
    model = prepared(space, seed)
    x = torch.randn(3, *in_shape(space), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        full_out = model(x)
    spec = space.spec(random_widths(space, seed + 10))
    small = extract(model, spec).eval()
    supernet = Supernet(model, space).eval()
    with torch.no_grad():
        supernet.set_widths(spec.widths)
        masked_out = supernet(x)
        small_out = small(x)
        supernet.set_widths(None)  # back to the full network
        back_out = supernet(x)
    assert (masked_out - small_out).abs().max().item() <= 1e-5
    assert (masked_out - full_out).abs().max().item() > 1e-3  # the masks did something
    assert torch.equal(back_out, full_out)
    assert list(supernet.weights()) == list(model.parameters())


# -- channel permutation ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet20_b", "resnet50"])
def test_permute_channels_preserves_the_function(name: str) -> None:
    space = small_space(name) if name != "resnet50" else tiny_resnet50()
    model = prepared(space, 5).double()  # float64: any real mismatch stands out from rounding
    x = torch.randn(2, *in_shape(space), generator=torch.Generator().manual_seed(5)).double()
    writers = {
        unit.name: next(la for la in space.layers if la.kind == "conv" and la.out_unit == unit.name)
        for unit in space.units
    }
    full_state = model.state_dict()
    before_state = {
        f"{w.name}.weight": full_state[f"{w.name}.weight"].clone() for w in writers.values()
    }
    with torch.no_grad():
        before = model(x)
    g = torch.Generator().manual_seed(6)
    order = {u.name: torch.randperm(u.max_width, generator=g) for u in space.units}
    permute_channels(model, space, order)
    with torch.no_grad():
        after = model(x)
    assert (after - before).abs().max().item() <= 1e-9
    # the tensors really moved: a writer of each unit now holds its channels in the new order
    state = model.state_dict()
    for unit in space.units:
        writer = writers[unit.name]
        key = f"{writer.name}.weight"
        expected = before_state[key].index_select(0, order[unit.name])
        if writer.in_unit is not None:
            expected = expected.index_select(1, order[writer.in_unit])
        assert torch.equal(state[key], expected), key

    # after ordering by L1 norm, every unit's L1 order is the identity (strongest first)
    permute_channels(model, space, channel_order(model, space, "l1"))
    with torch.no_grad():
        assert (model(x) - before).abs().max().item() <= 1e-9
    for unit_name, perm in channel_order(model, space, "l1").items():
        assert torch.equal(perm, torch.arange(space.max_widths[unit_name])), unit_name


# -- BN recalibration ----------------------------------------------------------------------------
def test_recalibrate_bn_restores_momentum_and_modes() -> None:
    space = small_space("resnet20_b")
    model = prepared(space)
    supernet = Supernet(model, space)
    supernet.eval()
    model.get_submodule("layer1").train()  # a mixed state must come back as it was
    special = model.get_submodule("layer2.0.bn1")
    assert isinstance(special, nn.BatchNorm2d)
    special.momentum = 0.3
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in bns]
    modes = {name: m.training for name, m in supernet.named_modules()}
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, *in_shape(space), generator=g), torch.zeros(8)) for _ in range(3)]
    old_mean = special.running_mean.clone() if special.running_mean is not None else None
    supernet.set_widths(space.uniform_widths(0.5))
    recalibrate_bn(supernet, batches)
    assert [m.momentum for m in bns] == momenta
    assert {name: m.training for name, m in supernet.named_modules()} == modes
    assert special.running_mean is not None and old_mean is not None
    assert not torch.equal(special.running_mean, old_mean)
    assert all(int(m.num_batches_tracked) == 3 for m in bns if m.num_batches_tracked is not None)

    # an exception during calibration still restores everything
    with pytest.raises(RuntimeError):
        recalibrate_bn(supernet, [(torch.randn(2, 7, 5, 5), torch.zeros(2))])
    assert [m.momentum for m in bns] == momenta
    assert {name: m.training for name, m in supernet.named_modules()} == modes


def test_recalibrate_bn_is_the_average_over_the_batches() -> None:
    bn = nn.BatchNorm2d(3, momentum=0.1)
    model = nn.Sequential(bn).eval()
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(5, 3, 4, 4, generator=g) * (i + 1) + i, torch.zeros(5)) for i in range(4)
    ]
    recalibrate_bn(model, batches)
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x, _ in batches])
    variances = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1) for x, _ in batches])
    assert bn.running_mean is not None and bn.running_var is not None
    assert torch.allclose(bn.running_mean, means.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, variances.mean(0), atol=1e-4)
    assert bn.momentum == 0.1 and not bn.training
