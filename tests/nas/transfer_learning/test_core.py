"""nas.transfer_learning.core: fine-tuning starts from the found weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import nas
import nas.transfer_learning.core
from nas.data import DataOptions
from nas.engine import TrainConfig, seed_everything
from nas.transfer_learning import run_transfer
from search_spaces import WidthSpec
from tests.nas.conftest import HEAD


@pytest.mark.parametrize("mode", ["finetune", "scratch"])
def test_finetune_starts_from_the_given_weights(
    mode: str,
    resnet20_found: tuple[WidthSpec, Path],
    npz_task: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, found = resnet20_found
    source = nas.load_model(found).state_dict()
    captured: dict[str, torch.Tensor] = {}

    def capture(model: nn.Module, *args: Any, **kwargs: Any) -> list[Any]:
        captured.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return []  # no training: the saved model is the starting point

    monkeypatch.setattr(nas.transfer_learning.core, "train_model", capture)
    config = TrainConfig(epochs=1, seed=5)
    metrics = run_transfer(
        found / "arch.json",
        DataOptions(dataset=npz_task),
        config,
        out_dir=tmp_path / "out",
        weights=found / "model.pt",
        mode=mode,
        progress=False,
    )
    # a fresh network for the new task, seeded as the transfer seeds it
    new = WidthSpec.load(tmp_path / "out" / "arch.json")
    seed_everything(config.seed)
    fresh = new.get_space().build(new.widths).state_dict()
    assert captured.keys() == fresh.keys() == source.keys()
    if mode == "finetune":
        assert set(metrics["reinitialised"]) == HEAD
        for k, v in captured.items():
            if k in HEAD:  # the new stem and head: freshly initialised
                assert v.shape != source[k].shape and torch.equal(v, fresh[k]), k
            else:  # everything else: the found network's weights
                assert torch.equal(v, source[k]), k
    else:
        assert metrics["reinitialised"] == []
        for k, v in captured.items():
            assert torch.equal(v, fresh[k]), k
            if v.shape == source[k].shape:
                assert not torch.equal(v, source[k]), k
    saved = nas.load_model(tmp_path / "out").state_dict()
    assert all(torch.equal(saved[k], v) for k, v in captured.items())
