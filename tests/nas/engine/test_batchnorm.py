"""nas.engine.batchnorm: BatchNorm statistics recomputed for an extracted network (the public
``nas.recalibrate_bn``)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import nas
from nas.data import DataBundle
from nas.engine import loader_state, restore_loader
from nas.errors import DataError
from nas.extraction import extract
from nas.importance import channel_order
from search_spaces import SearchSpace

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def extracted(trained: tuple[SearchSpace, nn.Module]) -> nn.Module:
    """Half of the trained digits ResNet-20, its BN statistics still the full network's."""
    space, model = trained
    spec = space.spec(space.uniform_widths_for_macs(0.5))
    return extract(model, spec, channel_order(model, space, "l1"))


def _first_stats(model: nn.Module) -> tuple[Tensor, Tensor]:
    """The running mean and variance of the first BN (the stem's)."""
    bn = model.get_submodule("bn1")
    assert isinstance(bn, nn.BatchNorm2d)
    assert bn.running_mean is not None and bn.running_var is not None
    return bn.running_mean, bn.running_var


@torch.no_grad()
def _stem_outputs(model: nn.Module, x: Tensor) -> Tensor:
    """What the first BN normalises: the stem conv's outputs, channels first, flattened."""
    out = model.get_submodule("conv1")(x)
    return out.transpose(0, 1).flatten(1)


def _next_images(digits: DataBundle, n: int) -> Tensor:
    """The first ``n`` images the training loader serves next (its state restored)."""
    state = loader_state(digits.train)
    xs = []
    for x, _ in digits.train:
        xs.append(x)
        if sum(len(b) for b in xs) >= n:
            break
    restore_loader(digits.train, state)
    return torch.cat(xs)[:n]


def test_the_statistics_become_those_of_the_images(extracted: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    sizes = (7, 5, 12)  # unequal batches: an average over images, not over batches
    batches = [(torch.randn(n, 1, 8, 8, generator=g), torch.zeros(n)) for n in sizes]
    before = _first_stats(extracted)[0].clone()
    nas.recalibrate_bn(extracted, batches)
    mean, var = _first_stats(extracted)
    x = torch.cat([b for b, _ in batches])
    assert torch.allclose(mean, _stem_outputs(extracted, x).mean(1), atol=1e-5)
    assert not torch.allclose(mean, before, atol=1e-3)
    # the variance: each batch's (unbiased) variance, weighted by its images
    variances = torch.stack([_stem_outputs(extracted, b).var(1) for b, _ in batches])
    weights = torch.tensor(sizes, dtype=torch.float32) / sum(sizes)
    assert torch.allclose(var, (weights[:, None] * variances).sum(0), rtol=1e-4)


def test_images_limits_what_is_read_and_the_loader_is_left_where_it_was(
    extracted: nn.Module, digits: DataBundle
) -> None:
    first = _next_images(digits, 200)
    nas.recalibrate_bn(extracted, digits.train, images=200)  # 128 + 72 of the next pass
    expected = _stem_outputs(extracted, first).mean(1)
    assert torch.allclose(_first_stats(extracted)[0], expected, atol=1e-5)
    assert torch.equal(_next_images(digits, 200), first)  # the loader's order is untouched
    everything = _stem_outputs(extracted, _next_images(digits, 10**6)).mean(1)
    assert not torch.allclose(_first_stats(extracted)[0], everything, atol=1e-3)


@pytest.mark.parametrize("mode", ["eval", "train", "mixed"])
def test_the_model_is_left_in_its_mode_with_its_momenta(extracted: nn.Module, mode: str) -> None:
    extracted.train(mode == "train")
    if mode == "mixed":
        extracted.get_submodule("layer2").train()
    special = extracted.get_submodule("layer3.0.bn2")
    assert isinstance(special, nn.BatchNorm2d)
    special.momentum = 0.3
    modes = {name: m.training for name, m in extracted.named_modules()}
    momenta = [m.momentum for m in extracted.modules() if isinstance(m, nn.BatchNorm2d)]
    nas.recalibrate_bn(extracted, [(torch.randn(16, 1, 8, 8), torch.zeros(16))])
    assert {name: m.training for name, m in extracted.named_modules()} == modes
    assert [m.momentum for m in extracted.modules() if isinstance(m, nn.BatchNorm2d)] == momenta
    assert all(p.grad is None for p in extracted.parameters())  # no gradients


def test_no_images_or_a_failure_leaves_the_statistics_as_they_were(extracted: nn.Module) -> None:
    before = {k: v.clone() for k, v in extracted.state_dict().items()}
    with pytest.raises(DataError, match="no images"):
        nas.recalibrate_bn(extracted, [])
    with pytest.raises(RuntimeError):  # a batch of the wrong shape, after a good one
        good = (torch.randn(4, 1, 8, 8), torch.zeros(4))
        nas.recalibrate_bn(extracted, [good, (torch.randn(4, 3, 8, 8), torch.zeros(4))])
    after = extracted.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
