"""nas.extraction.saving: arch.json + model.pt + model.pt2 + model.ts, and load_model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import search_spaces
from nas.errors import WeightsError
from nas.extraction import extract, load_model, save_model
from nas.extraction.saving import exported_bytes
from nas.importance import channel_order
from tests.conftest import random_widths, randomize_bn, small_space


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_save_and_load_round_trip(tmp_path: Path) -> None:
    space = small_space("resnet56_b")
    full = space.build()
    randomize_bn(full, 1, (space.in_channels, *space.input_size))
    spec = space.spec(random_widths(space, 4))
    small = extract(full, spec, channel_order(full, space)).eval()
    save_model(small, spec, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["arch.json", "model.pt", "model.pt2", "model.ts"]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(state) == set(small.state_dict())
    loaded = load_model(tmp_path)
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    x = torch.randn(3, space.in_channels, *space.input_size)
    with torch.no_grad():
        expected = small(x)
        assert torch.equal(loaded(x), expected)
        assert (scripted(x) - expected).abs().max().item() <= 1e-5  # BN folded into convs
    # model.pt2 with torch alone, at batch sizes other than the one it was exported with
    exported = torch.export.load(tmp_path / "model.pt2").module()
    with torch.no_grad():
        for n in (1, 3, 8):
            x = torch.randn(n, space.in_channels, *space.input_size)
            assert (exported(x) - small(x)).abs().max().item() <= 1e-5


def test_a_network_torch_export_cannot_capture_is_saved_without_model_pt2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A network whose forward branches on its input's values: model.pt and model.ts are
    written, model.pt2 is left out with one warning line."""

    class Branchy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if float(x.sum()) > 0:  # data-dependent: no graph captures it
                return self.conv(x).mean((2, 3))
            return -self.conv(x).mean((2, 3))

    spec = search_spaces.create("resnet20", in_channels=1, input_size=(8, 8)).spec()
    assert exported_bytes(Branchy(), spec) is None
    assert "warning: model.pt2 not written: torch.export cannot capture" in capsys.readouterr().err


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
