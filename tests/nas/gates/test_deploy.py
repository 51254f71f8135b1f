"""The standalone conditional network: sliced per image at batch size 1, saved and reloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nas.errors import ConfigError
from nas.gates import ConditionalGumbel
from nas.gates.deploy import conditional_network, load_conditional, save_conditional
from nas.supernet import Supernet
from tests.conftest import small_space
from tests.nas.conftest import choices_of, prepared

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _gated(name: str = "resnet20", group_size: int = 1) -> tuple[Supernet, ConditionalGumbel]:
    space = small_space(name, num_classes=4)
    supernet = Supernet(prepared(space), space)
    strategy = ConditionalGumbel(space, choices_of(space), group_size=group_size, init_open=0.6)
    strategy.attach(supernet)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for net in strategy.nets.values():
            for m in net.modules():
                if isinstance(m, torch.nn.Linear):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g))
    for net in strategy.nets.values():
        net.eval()
    return supernet, strategy


@pytest.mark.parametrize(("name", "group_size"), [("resnet20", 1), ("resnet20_b", 4)])
def test_the_conditional_network_computes_what_the_gated_supernet_computes(
    name: str, group_size: int, tmp_path: Path
) -> None:
    supernet, strategy = _gated(name, group_size)
    space = supernet.space
    x = torch.randn(
        5, space.in_channels, *space.input_size, generator=torch.Generator().manual_seed(2)
    )
    supernet.eval()
    with torch.no_grad():
        strategy.gate("discrete", 1.0)
        reference = supernet(x)
        supernet.set_masks(None)
    model = conditional_network(supernet, strategy)
    save_conditional(model, space, group_size, tmp_path / "c")
    scripted = torch.jit.load(str(tmp_path / "c" / "model.ts"))
    loaded = load_conditional(tmp_path / "c")
    with torch.no_grad():
        assert torch.allclose(model(x), reference, atol=1e-5)  # a batch: masked channels
        for i in range(5):  # one image: the weights sliced to its open channels
            one = x[i : i + 1]
            assert torch.allclose(model(one)[0], reference[i], atol=1e-4)
            assert torch.allclose(scripted(one)[0], reference[i], atol=1e-4)
            assert torch.allclose(loaded(one)[0], reference[i], atol=1e-4)


def test_a_directory_without_a_conditional_network_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no conditional network"):
        load_conditional(tmp_path)
