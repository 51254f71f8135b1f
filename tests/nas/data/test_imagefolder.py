"""nas.data.imagefolder: imagefolder:PATH datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.data import load_data
from nas.data.loaders import SampleLoader
from nas.errors import DataError
from tests.nas.data.conftest import _first_batch


def _make_image_tree(
    root: Path, *, mode: str = "RGB", val_name: str = "val", count: int = 5
) -> None:
    rng = np.random.default_rng(0)
    shape = (12, 12, 3) if mode == "RGB" else (12, 12)
    for split, n in (("train", count), (val_name, 2)):
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
                Image.fromarray(pixels, mode=mode).save(folder / f"{i}.png")


def test_imagefolder(tmp_path: Path) -> None:
    _make_image_tree(tmp_path / "imgs")
    bundle = load_data(
        f"imagefolder:{tmp_path / 'imgs'}", image_size=8, batch_size=4, val_fraction=0.2
    )
    assert isinstance(bundle.train, SampleLoader)
    assert (bundle.num_classes, bundle.in_channels, bundle.input_size) == (2, 3, (8, 8))
    assert bundle.classes == ("cat", "dog")
    assert bundle.describe()["n_train"] == 8
    assert bundle.describe()["n_val"] == 2
    assert bundle.describe()["n_test"] == 4
    x, y = _first_batch(bundle.train)
    assert x.shape == (4, 3, 8, 8) and set(y.tolist()) <= {0, 1}
    assert bundle.val is not None
    assert _first_batch(bundle.val)[0].shape[1:] == (3, 8, 8)
    first, second = _first_batch(bundle.test), _first_batch(bundle.test)
    assert torch.equal(first[0], second[0])  # eval transform is deterministic


def test_imagefolder_grayscale_and_test_folder(tmp_path: Path) -> None:
    _make_image_tree(tmp_path / "gray", mode="L", val_name="test")
    bundle = load_data(f"imagefolder:{tmp_path / 'gray'}", image_size=8, val_fraction=0.0)
    assert bundle.in_channels == 1 and bundle.val is None
    assert bundle.mean == (0.5,)
    assert _first_batch(bundle.test)[0].shape == (4, 1, 8, 8)


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_data(f"imagefolder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="train/"):
        load_data(f"imagefolder:{tmp_path / 'empty'}")
    _make_image_tree(tmp_path / "mismatch")
    (tmp_path / "mismatch" / "val" / "dog").rename(tmp_path / "mismatch" / "val" / "bird")
    with pytest.raises(DataError, match="class folders differ"):
        load_data(f"imagefolder:{tmp_path / 'mismatch'}", image_size=8)
    _make_image_tree(tmp_path / "noimages")
    for f in (tmp_path / "noimages" / "train" / "cat").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="cat"):
        load_data(f"imagefolder:{tmp_path / 'noimages'}", image_size=8)


def test_imagefolder_of_one_class_or_non_images_is_refused(tmp_path: Path) -> None:
    _make_image_tree(tmp_path / "one", count=10)
    for split in ("train", "val"):
        for f in (tmp_path / "one" / split / "dog").iterdir():
            f.unlink()
        (tmp_path / "one" / split / "dog").rmdir()
    with pytest.raises(DataError, match="has 1 class; need at least 2"):
        load_data(f"imagefolder:{tmp_path / 'one'}", image_size=8)
    _make_image_tree(tmp_path / "text")
    for f in (tmp_path / "text" / "train" / "cat").iterdir():
        f.write_text("not an image")
    with pytest.raises(DataError, match=r"cannot read image .*0\.png"):
        load_data(f"imagefolder:{tmp_path / 'text'}", image_size=8)
