"""Extraction: the standalone network computes what the masked full network computes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import search_spaces
from nas.cost import count_model_params
from nas.errors import ConfigError, WeightsError
from nas.extraction import extract, kept_channels, load_model, mask_channels, save_model, spec_masks
from nas.importance import channel_order
from tests.conftest import random_widths, randomize_bn, small_space


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


def test_l1_order_keeps_the_strongest_filters() -> None:
    space = search_spaces.create("resnet20")
    full = space.build()
    conv = full.get_submodule("layer1.0.conv1")
    assert isinstance(conv, torch.nn.Conv2d)
    with torch.no_grad():
        conv.weight.mul_(0.01)
        conv.weight[[3, 7, 12]] *= 1000.0
    spec = space.spec({**space.full_widths(), "layer1.0.conv1": 3})
    keep = kept_channels(spec, channel_order(full, space, "l1"))
    assert keep["layer1.0.conv1"].tolist() == [3, 7, 12]
    assert kept_channels(spec)["layer1.0.conv1"].tolist() == [0, 1, 2]


def test_bn_order_ranks_coupled_units_by_all_their_bns() -> None:
    space = search_spaces.create("resnet20_b")
    full = space.build()
    with torch.no_grad():
        for name in ("bn1", "layer1.0.bn2", "layer1.1.bn2", "layer1.2.bn2"):
            bn = full.get_submodule(name)
            assert isinstance(bn, torch.nn.BatchNorm2d)
            bn.weight.fill_(0.1)
            bn.weight[5] = 2.0
    assert channel_order(full, space, "bn")["layer1"][0].item() == 5


def test_unknown_order_criterion() -> None:
    space = search_spaces.create("resnet20")
    with pytest.raises(ConfigError, match="unknown channel-importance criterion 'magic'"):
        channel_order(space.build(), space, "magic")


def test_mismatched_weights_are_refused() -> None:
    space = search_spaces.create("resnet20")
    other = search_spaces.create("resnet20", num_classes=100).build()
    with pytest.raises(WeightsError, match=r"fc\.weight has shape"):
        extract(other.state_dict(), space.spec(space.uniform_widths(0.5)))
    with pytest.raises(WeightsError, match=r"unexpected \['layer1\.3"):
        extract(search_spaces.create("resnet32").build(), space.spec())


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_save_and_load_round_trip(tmp_path: Path) -> None:
    space = small_space("resnet56_b")
    full = space.build()
    randomize_bn(full, 1, (space.in_channels, *space.input_size))
    spec = space.spec(random_widths(space, 4))
    small = extract(full, spec, channel_order(full, space)).eval()
    save_model(small, spec, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arch.json", "model.pt", "model.ts"]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == set(small.state_dict())
    loaded = load_model(tmp_path)
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    x = torch.randn(3, space.in_channels, *space.input_size)
    with torch.no_grad():
        expected = small(x)
        assert torch.equal(loaded(x), expected)
        assert (scripted(x) - expected).abs().max().item() <= 1e-5  # BN folded into convs


def test_load_model_refuses_weights_of_another_spec(tmp_path: Path) -> None:
    space = search_spaces.create("resnet20")
    save_model(
        space.build(space.uniform_widths(0.5)),
        space.spec(space.uniform_widths(0.5)),
        tmp_path,
        torchscript=False,
    )
    space.spec(space.uniform_widths(0.75)).save(tmp_path / "arch.json")
    with pytest.raises(WeightsError, match="do not match the network of the spec"):
        load_model(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_model(tmp_path)
