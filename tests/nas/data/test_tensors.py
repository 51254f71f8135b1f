"""nas.data.tensors: digits, the torchvision sets and npz:PATH datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import DataBundle, RandomCropFlip, TensorLoader, load_data
from nas.errors import DataError
from tests.nas.data.conftest import _first_batch


def _all_labels(loader: object) -> torch.Tensor:
    return torch.cat([y for _, y in loader])  # type: ignore[attr-defined]


def test_digits_shapes_and_sizes(digits: DataBundle) -> None:
    assert (digits.num_classes, digits.in_channels, digits.input_size) == (10, 1, (8, 8))
    info = digits.describe()
    assert info["n_train"] + info["n_val"] + info["n_test"] == 1797  # type: ignore[operator]
    assert info["n_test"] == 360
    assert digits.val is not None
    x, y = _first_batch(digits.train)
    assert x.shape == (128, 1, 8, 8) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and int(y.max()) < 10
    assert set(_all_labels(digits.test).tolist()) == set(range(10))


def test_digits_test_split_fixed_val_split_seeded(digits: DataBundle) -> None:
    other = load_data("digits", seed=1)
    assert torch.equal(_all_labels(digits.test), _all_labels(other.test))
    assert isinstance(digits.test, TensorLoader) and isinstance(other.test, TensorLoader)
    # same raw pixels (normalisation stats differ with the val split, so undo it)
    raw = digits.test.images * digits.std[0] + digits.mean[0]
    raw_other = other.test.images * other.std[0] + other.mean[0]
    assert torch.allclose(raw, raw_other, atol=1e-5)
    assert digits.val is not None and other.val is not None
    assert isinstance(digits.val, TensorLoader) and isinstance(other.val, TensorLoader)
    assert not torch.equal(digits.val.images, other.val.images)


def test_digits_same_seed_same_batches() -> None:
    a = load_data("digits", seed=3)
    b = load_data("digits", seed=3)
    for (xa, ya), (xb, yb) in zip(a.train, b.train, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # the next epoch is different from the first, but again identical between the two
    xa1, _ = _first_batch(a.train)
    xb1, _ = _first_batch(b.train)
    assert torch.equal(xa1, xb1)


def test_digits_normalised_and_resized(digits: DataBundle) -> None:
    assert isinstance(digits.train, TensorLoader)
    x = digits.train.images
    assert abs(float(x.mean())) < 1e-4
    assert abs(float(x.std(correction=0)) - 1.0) < 1e-3
    assert len(digits.mean) == len(digits.std) == 1
    big = load_data("digits", image_size=16, val_fraction=0.0)
    assert big.input_size == (16, 16) and big.val is None
    assert _first_batch(big.test)[0].shape[1:] == (1, 16, 16)
    assert big.describe()["n_train"] == 1797 - 360


def test_torchvision_needs_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    with pytest.raises(DataError, match="--data-root"):
        load_data("cifar10")
    with pytest.raises(DataError, match="--download"):
        load_data("cifar10", data_root=tmp_path, download=False)
    with pytest.raises(DataError, match="not found"):
        load_data("mnist", data_root=tmp_path / "nothing_here")


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An MNIST-style idx file (unsigned bytes, big-endian dimensions)."""
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_mnist_style_from_local_files(tmp_path: Path, name: str, folder: str) -> None:
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    bundle = load_data(name, data_root=tmp_path, val_fraction=0.2, batch_size=8)
    assert (bundle.num_classes, bundle.in_channels, bundle.input_size) == (10, 1, (28, 28))
    assert bundle.describe()["n_train"] == 24 and bundle.describe()["n_test"] == 10
    assert isinstance(bundle.train, TensorLoader)
    augment = bundle.train.augment
    assert isinstance(augment, RandomCropFlip)
    assert augment.padding == 2 and augment.flip == (name == "fashion-mnist")
    assert _first_batch(bundle.train)[0].shape == (8, 1, 28, 28)


def _save_npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("as_float", [False, True])
def test_npz_layouts_give_identical_data(tmp_path: Path, channels: int, as_float: bool) -> None:
    rng = np.random.default_rng(0)
    base_train = rng.integers(0, 256, size=(40, channels, 12, 10), dtype=np.uint8)  # NCHW
    base_test = rng.integers(0, 256, size=(12, channels, 12, 10), dtype=np.uint8)
    y_train = np.arange(40) % 4
    y_test = np.array([0, 1, 2, 3, 3, 0, 1, 2, 3, 2, 0, 1])
    layouts = {"nchw": lambda a: a, "nhwc": lambda a: a.transpose(0, 2, 3, 1)}
    if channels == 1:
        layouts["nhw"] = lambda a: a[:, 0]
    bundles = {}
    for layout, convert in layouts.items():
        x_train, x_test = convert(base_train), convert(base_test)
        if as_float:
            x_train, x_test = x_train / np.float32(255), x_test / np.float32(255)
        path = _save_npz(
            tmp_path / f"{layout}.npz",
            x_train=x_train,
            y_train=y_train,
            x_test=x_test,
            y_test=y_test,
        )
        bundles[layout] = load_data(f"npz:{path}", val_fraction=0.25, augment=False)
    reference = bundles["nchw"]
    assert isinstance(reference.test, TensorLoader) and isinstance(reference.train, TensorLoader)
    for bundle in bundles.values():
        assert bundle.in_channels == channels
        assert bundle.input_size == (12, 10)
        assert bundle.num_classes == 4
        assert isinstance(bundle.test, TensorLoader) and isinstance(bundle.train, TensorLoader)
        assert torch.allclose(bundle.train.images, reference.train.images, atol=1e-5)
        assert torch.allclose(bundle.test.images, reference.test.images, atol=1e-5)
        assert np.allclose(bundle.mean, reference.mean, atol=1e-6)
    # normalisation can be undone to get the original pixels back
    raw = reference.test.images * torch.tensor(reference.std).view(1, -1, 1, 1)
    raw = raw + torch.tensor(reference.mean).view(1, -1, 1, 1)
    assert torch.allclose(raw * 255, torch.from_numpy(base_test).float(), atol=1e-3)


def test_npz_augmentation_padding(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.random((64, 16, 16, 3), dtype=np.float32)
    y = rng.integers(0, 3, size=64)
    path = _save_npz(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    bundle = load_data(f"npz:{path}", batch_size=16)
    assert isinstance(bundle.train, TensorLoader)
    augment = bundle.train.augment
    assert isinstance(augment, RandomCropFlip)
    assert augment.padding == 2 and not augment.flip
    assert _first_batch(bundle.train)[0].shape == (16, 3, 16, 16)


def _good_arrays() -> dict[str, np.ndarray]:
    x = np.zeros((12, 8, 8), dtype=np.uint8)
    y = np.arange(12) % 2
    return {"x_train": x, "y_train": y, "x_test": x[:2], "y_test": y[:2]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y_train": None}, "missing array.*y_train"),
        ({"y_train": np.array([0, 1, 0])}, "length mismatch"),
        ({"y_train": np.zeros(12, dtype=int)}, "one class"),
        ({"y_train": np.array([0, 10**9] * 6)}, "label 1000000000 is out of range"),
        ({"y_train": np.array([0, 2] * 6)}, r"1 of 0\.\.2 never appear \(first \[1\]\)"),
        ({"y_test": np.array([0, 2])}, "test label 2 never appears in the training data"),
        (
            {"x_train": np.zeros((3, 8, 8)), "y_train": np.array([0, 1, 0])},
            r"leaves 2 training image\(s\) after the validation split; need at least 8",
        ),
        (
            {"x_train": np.zeros((12, 3, 3)), "x_test": np.zeros((2, 3, 3))},
            "images are 3x3 pixels; need at least 4x4",
        ),
        ({"y_test": np.array([-1, 0])}, "negative labels"),
        ({"y_train": np.array([0.0, 1, 0, 1, 0, 1])}, "integer labels"),
        ({"x_test": np.zeros((2, 9, 8), dtype=np.uint8)}, "shape mismatch"),
        ({"x_train": np.zeros((0, 8, 8)), "y_train": np.zeros(0, dtype=int)}, "empty"),
        ({"x_train": np.zeros((12, 64)), "x_test": np.zeros((2, 64))}, "3-D or 4-D"),
        (
            {"x_train": np.zeros((12, 8, 8, 7)), "x_test": np.zeros((2, 8, 8, 7))},
            "7 channels",
        ),
    ],
)
def test_npz_content_errors(
    tmp_path: Path, change: dict[str, np.ndarray | None], message: str
) -> None:
    arrays: dict[str, np.ndarray | None] = dict(_good_arrays())
    arrays.update(change)
    path = _save_npz(tmp_path / "bad.npz", **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(DataError, match=message) as info:
        load_data(f"npz:{path}")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_npz_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_data(f"npz:{tmp_path / 'missing.npz'}")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip archive" * 10)
    with pytest.raises(DataError, match=r"not a valid \.npz") as info:
        load_data(f"npz:{corrupt}")
    assert str(corrupt) in str(info.value)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(bytes(range(256)))
    with pytest.raises(DataError, match=r"not a valid \.npz"):
        load_data(f"npz:{garbage}")
    with pytest.raises(DataError, match="needs a path"):
        load_data("npz:")


def test_train_augmented_eval_not(digits: DataBundle) -> None:
    assert isinstance(digits.train, TensorLoader) and digits.val is not None
    assert isinstance(digits.val, TensorLoader)
    assert isinstance(digits.train.augment, RandomCropFlip)
    assert digits.train.augment.padding == 1 and not digits.train.augment.flip
    assert digits.val.augment is None and not digits.val.shuffle
    images, labels = digits.train.images, digits.train.labels
    augmented = TensorLoader(images, labels, 128, True, digits.train.augment, seed=0)
    plain = TensorLoader(images, labels, 128, True, None, seed=0)
    x, y = _first_batch(augmented)
    x_plain, y_plain = _first_batch(plain)
    assert torch.equal(y, y_plain)  # same permutation...
    assert not torch.equal(x, x_plain)  # ...but cropped
    changed = (x - x_plain).flatten(1).abs().amax(1) > 0
    assert 0 < int(changed.sum()) < len(x)  # offset (1, 1) leaves about 1/9 unchanged
    for loader in (digits.val, digits.test):
        first = [xb for xb, _ in loader]
        second = [xb for xb, _ in loader]
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
        assert torch.equal(torch.cat(first), loader.images)  # type: ignore[union-attr]
