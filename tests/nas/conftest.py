"""Helpers and fixtures shared by the test folders under tests/nas (several packages need them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nas
import search_spaces
from nas.cli import main
from nas.data import DataBundle, TensorLoader, load_data
from nas.engine import TrainConfig, train_model
from nas.gates import WidthGumbel
from nas.supernet import Supernet, width_choices
from nas.width_search import DEFAULT_WIDTH_RATIOS
from search_spaces import SearchSpace, WidthSpec
from tests.conftest import randomize_bn, small_space


def random_batches(
    space: SearchSpace, count: int = 2, size: int = 16, seed: int = 2
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` batches of ``size`` random images of the space's input shape (labels 0)."""
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, space.in_channels, *space.input_size, generator=g), torch.zeros(size))
        for _ in range(count)
    ]


# coarser width choices for tests whose chooser scores every narrowing (greedy slimming): the
# same logic over fewer candidates
COARSE_RATIOS = (0.2, 0.4, 0.6, 0.8, 1.0)


def choices_of(
    space: SearchSpace, ratios: tuple[float, ...] = DEFAULT_WIDTH_RATIOS
) -> dict[str, list[int]]:
    return {u.name: width_choices(u.max_width, ratios) for u in space.units}


def attached(name: str = "resnet20_b", seed: int = 0) -> tuple[Supernet, WidthGumbel]:
    space = small_space(name, num_classes=4)
    torch.manual_seed(seed)
    model = space.build()
    randomize_bn(model, seed, (space.in_channels, *space.input_size))
    supernet = Supernet(model, space)
    strategy = WidthGumbel(space, choices_of(space))
    strategy.attach(supernet)
    return supernet, strategy


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def in_shape(space: SearchSpace) -> tuple[int, int, int]:
    return (space.in_channels, *space.input_size)


def prepared(space: SearchSpace, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = space.build()
    randomize_bn(model, seed, in_shape(space))
    return model


def tiny_resnet50() -> SearchSpace:
    return search_spaces.create("resnet50", num_classes=5, in_channels=3, input_size=(12, 12))


ESSENTIAL = "layer2.1.conv1"


def known_answer_task() -> tuple[SearchSpace, nn.Module, TensorLoader, TensorLoader]:
    """ResNet-20 (option A) whose residual branches are all switched off (their last conv
    zeroed) but one, strengthened; labels are the network's own predictions. So every unit's
    width is useless (its branch adds nothing at any width) except the unit of that one block,
    whose channels carry what decides the labels."""
    # ten classes: with batch statistics in the architecture step, a narrower essential unit
    # changes the labels' decisions only where the classes are close; with four, hardly at all
    space = search_spaces.create("resnet20", num_classes=10, in_channels=3, input_size=(8, 8))
    torch.manual_seed(0)
    model = space.build()
    with torch.no_grad():
        for unit in space.units:
            block = unit.name.rsplit(".", 1)[0]
            conv2 = model.get_submodule(f"{block}.conv2")
            bn2 = model.get_submodule(f"{block}.bn2")
            assert isinstance(conv2, nn.Conv2d) and isinstance(bn2, nn.BatchNorm2d)
            if unit.name == ESSENTIAL:
                bn2.weight.fill_(6.0)
            else:
                conv2.weight.zero_()
        g = torch.Generator().manual_seed(1)
        x = torch.randn(512, 3, 8, 8, generator=g)
        model.train()
        y = model(x).argmax(1)  # the labels: the network's own decisions
    model.eval()
    train = TensorLoader(x[:384], y[:384], 32, True, None, seed=0)
    val = TensorLoader(x[384:], y[384:], 128, False, None, seed=0)
    return space, model, train, val


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_data("digits", seed=0)


@pytest.fixture(scope="module")
def val(digits: DataBundle) -> TensorLoader:
    assert isinstance(digits.val, TensorLoader)
    return digits.val


@pytest.fixture(scope="module")
def trained(digits: DataBundle) -> tuple[SearchSpace, nn.Module]:
    """ResNet-20 for digits after one epoch of training."""
    space = search_spaces.create(
        "resnet20",
        num_classes=digits.num_classes,
        in_channels=digits.in_channels,
        input_size=digits.input_size,
    )
    torch.manual_seed(0)
    model = space.build()
    train_model(model, digits.train, config=TrainConfig(epochs=1), progress=False)
    return space, model.eval()


def interrupt_on_call(n: int, method: Callable[..., Any]) -> Callable[..., Any]:
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return method(*args, **kwargs)

    return wrapper


HEAD = {"conv1.weight", "fc.weight", "fc.bias"}  # rebuilt for 3 channels and 4 classes


DIGITS = {"num_classes": 10, "in_channels": 1, "input_size": (8, 8)}


def _quadrant_images(n: int, rng: np.random.Generator, size: int = 12) -> tuple[Any, Any]:
    """RGB images whose class (0-3) is the bright quadrant, plus noise: easy to learn."""
    y = np.arange(n) % 4
    x = rng.integers(0, 60, size=(n, size, size, 3))
    half = size // 2
    for i, label in enumerate(y):
        r, c = divmod(int(label), 2)
        x[i, r * half : (r + 1) * half, c * half : (c + 1) * half, :] += 150
    return x.astype(np.uint8), y.astype(np.int64)


@pytest.fixture(scope="module")
def npz_task(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 4-class task of 3-channel 12x12 images (NHWC uint8): 200 train, 60 test."""
    rng = np.random.default_rng(0)
    x_train, y_train = _quadrant_images(200, rng)
    x_test, y_test = _quadrant_images(60, rng)
    path = tmp_path_factory.mktemp("npz") / "quadrants.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return f"npz:{path}"


def randomized_state(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The model's state_dict with every float tensor moved off its initial value (so inherited
    and freshly initialised tensors can be told apart)."""
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for k, v in state.items():
        if v.is_floating_point():
            v.add_(torch.randn(v.shape, generator=g) * 0.1 + 0.05)
            if k.endswith("running_var"):
                v.abs_()
        else:
            v.fill_(7)
    return state


def found_network(
    root: Path, space_name: str, widths: Callable[[search_spaces.SearchSpace], dict[str, int]]
) -> tuple[WidthSpec, Path]:
    """A "found" network of ``space_name`` for digits: ``root/arch.json`` + ``root/model.pt``."""
    space = search_spaces.create(space_name, **DIGITS)  # type: ignore[arg-type]
    spec = space.spec(widths(space))
    model = space.build(spec.widths)
    model.load_state_dict(randomized_state(model, 0))
    nas.save_model(model, spec, root, torchscript=False)
    return spec, root


@pytest.fixture(scope="module")
def resnet20_found(tmp_path_factory: pytest.TempPathFactory) -> tuple[WidthSpec, Path]:
    return found_network(
        tmp_path_factory.mktemp("r20"), "resnet20", lambda s: s.uniform_widths(0.5)
    )
