"""nas.compression.storage: clustered.pt holds centroids and packed indices, and rebuilds the
network exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import search_spaces
from nas.compression import attach, index_bits, load_clustered, save_clustered, snap
from nas.compression.storage import pack, size_report, unpack
from nas.errors import WeightsError


@pytest.mark.parametrize("clusters", [2, 4, 16, 256, 1000])
def test_packed_indices_come_back_unchanged(clusters: int) -> None:
    bits = index_bits(clusters)
    assert 2**bits >= clusters and bits in (1, 2, 4, 8, 16)
    idx = torch.randint(clusters, (1001,), generator=torch.Generator().manual_seed(0))
    packed = pack(idx, bits)
    assert packed.numel() * packed.element_size() * 8 <= 1001 * bits + 8
    assert torch.equal(unpack(packed, bits, 1001), idx)


def test_a_clustered_network_is_rebuilt_exactly_and_is_smaller(tmp_path: Path) -> None:
    space = search_spaces.create("resnet20", num_classes=10)
    torch.manual_seed(0)
    spec = space.spec(space.uniform_widths(0.5))
    model = space.build(spec.widths).eval()
    attach(model, 16, 0.5)
    clusters = snap(model, 16)
    path = save_clustered(model, clusters, spec, tmp_path)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    again = load_clustered(tmp_path)
    rebuilt = again.state_dict()
    assert set(rebuilt) == set(model.state_dict())  # the original key names
    assert all(torch.equal(v, rebuilt[k]) for k, v in model.state_dict().items())  # bit-exact
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(model(x), again(x))
    report = size_report(model, clusters, path)
    assert report["index_bits"] == 4 and 4 < report["bits_per_weight"] < 5
    assert report["file_bytes"] < (tmp_path / "model.pt").stat().st_size / 5


def test_a_folder_without_a_clustered_network_is_one_line(tmp_path: Path) -> None:
    space = search_spaces.create("resnet20", num_classes=10)
    space.spec().save(tmp_path / "arch.json")
    with pytest.raises(WeightsError, match="holds no clustered network"):
        load_clustered(tmp_path)
    (tmp_path / "clustered.pt").write_bytes(b"not a file torch wrote")
    with pytest.raises(WeightsError, match="cannot read clustered network"):
        load_clustered(tmp_path)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "clustered.pt")  # a state dict instead
    with pytest.raises(WeightsError, match="is not a clustered network"):
        load_clustered(tmp_path)
