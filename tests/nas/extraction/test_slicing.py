"""nas.extraction.slicing: extracted networks equal masked ones; channel permutation."""

from __future__ import annotations

import pytest
import torch
import torchvision

import nas
import search_spaces
from nas.cost import count_model_params
from nas.data import DataBundle
from nas.extraction import extract, mask_channels, permute_channels, spec_masks
from nas.importance import channel_order
from tests.conftest import random_widths, randomize_bn, small_space
from tests.nas.conftest import in_shape, prepared, tiny_resnet50


@pytest.mark.parametrize("criterion", ["l1", "first"])
def test_extracted_network_equals_the_masked_full_network(space_name: str, criterion: str) -> None:
    space = small_space(space_name)
    in_shape = (space.in_channels, *space.input_size)
    torch.manual_seed(0)
    full = space.build()
    randomize_bn(full, 0, in_shape)
    spec = space.spec(random_widths(space, 11))
    order = channel_order(full, space, criterion)
    small = extract(full, spec, order).eval()
    x = torch.randn(4, *in_shape)
    handles = mask_channels(full, space, spec_masks(spec, order))
    with torch.no_grad():
        reference = full(x)
        out = small(x)
    for h in handles:
        h.remove()
    assert (out - reference).abs().max().item() <= 1e-5
    assert count_model_params(small) == space.params(spec.widths)


def test_extraction_really_shrinks_every_tensor() -> None:
    space = search_spaces.create("resnet50", num_classes=10, input_size=(32, 32))
    full = space.build()
    spec = space.spec(space.uniform_widths(0.25))
    small = extract(full, spec)
    shapes = {k: tuple(v.shape) for k, v in small.state_dict().items()}
    assert shapes["layer1.0.conv1.weight"] == (16, 16, 1, 1)
    assert shapes["layer4.0.downsample.0.weight"] == (512, 256, 1, 1)
    assert shapes["fc.weight"] == (10, 512)
    assert set(shapes) == set(full.state_dict())  # torchvision key names kept
    assert isinstance(small, torchvision.models.ResNet)


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


def test_extract_with_recalibrate_is_extract_then_recalibrate_bn_and_beats_the_stale_one(
    trained: tuple[search_spaces.SearchSpace, torch.nn.Module], digits: DataBundle
) -> None:
    """A cut network keeps the full network's BN statistics, which do not fit it;
    ``recalibrate=`` recomputes them, exactly as ``nas.recalibrate_bn`` does."""
    space, model = trained
    spec = space.spec(space.uniform_widths_for_macs(0.5))
    order = channel_order(model, space, "l1")
    stale = extract(model, spec, order)
    small = extract(model, spec, order, recalibrate=digits.train, recalibrate_images=500)
    by_hand = extract(model, spec, order)
    nas.recalibrate_bn(by_hand, digits.train, images=500)
    assert all(torch.equal(v, by_hand.state_dict()[k]) for k, v in small.state_dict().items())
    assert not small.training  # the full network's mode, as without recalibrate
    assert nas.evaluate(small, digits.test).accuracy > nas.evaluate(stale, digits.test).accuracy + 5
