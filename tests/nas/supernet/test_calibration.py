"""nas.supernet.calibration: BN recalibration."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.supernet import Supernet, recalibrate_bn
from tests.conftest import small_space
from tests.nas.conftest import in_shape, prepared


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
