"""nas.data.base: load options and the validation split."""

from __future__ import annotations

import pytest
import torch

from nas.data import load_data, split_indices
from nas.errors import DataError


def test_bad_options() -> None:
    with pytest.raises(DataError, match="val_fraction"):
        load_data("digits", val_fraction=1.0)
    with pytest.raises(DataError, match="val_fraction"):
        split_indices(10, -0.1, 0)
    with pytest.raises(DataError, match="batch size"):
        load_data("digits", batch_size=0)


def test_split_indices() -> None:
    train, val = split_indices(100, 0.2, seed=5)
    assert len(train) == 80 and len(val) == 20
    assert sorted(torch.cat([train, val]).tolist()) == list(range(100))
    again_train, again_val = split_indices(100, 0.2, seed=5)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    assert not torch.equal(val, split_indices(100, 0.2, seed=6)[1])
    assert len(split_indices(100, 0.0, seed=0)[1]) == 0
