"""nas.supernet.network: width choices, make_maskable and the supernet at fixed widths."""

from __future__ import annotations

import copy

import pytest
import torch

from nas.extraction import extract
from nas.supernet import MaskedBatchNorm2d, Supernet, make_maskable, nested_masks, width_choices
from search_spaces import SearchSpace
from tests.conftest import random_widths, small_space
from tests.nas.conftest import in_shape, prepared, tiny_resnet50


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
