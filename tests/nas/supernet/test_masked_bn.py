"""nas.supernet.masked_bn: MaskedBatchNorm2d equals BN times the mask."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.supernet import MaskedBatchNorm2d


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
