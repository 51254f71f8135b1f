"""nas.width_search.checkpoint: a search checkpoint and a shared warm-up."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from nas.data import DataBundle, TensorLoader, load_data
from nas.engine.state import read_checkpoint, save_checkpoint
from nas.errors import ConfigError
from nas.width_search import SEARCH_CHECKPOINT, SEARCH_FORMAT, SearchRun, search_widths, warm_up
from search_spaces import SearchSpace
from tests.nas.conftest import interrupt_on_call
from tests.nas.width_search.conftest import tiny

slow = pytest.mark.slow  # end-to-end runs (a few seconds each on a CPU)


def test_search_checkpoint_refuses_other_search_options(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    digits: DataBundle,
    val: TensorLoader,
    trained: tuple[SearchSpace, nn.Module],
) -> None:
    space, model = trained
    config = tiny(warmup_epochs=1, search_epochs=1)
    monkeypatch.setattr(SearchRun, "epoch", interrupt_on_call(2, SearchRun.epoch))
    with pytest.raises(KeyboardInterrupt):
        search_widths(
            model,
            space,
            digits.train,
            val,
            config=config,
            out_dir=tmp_path,
            progress=False,
        )
    monkeypatch.undo()
    assert (tmp_path / SEARCH_CHECKPOINT).is_file()
    other = tiny(warmup_epochs=1, search_epochs=1, budget_weight=3.5)
    with pytest.raises(ConfigError, match="other search options"):
        search_widths(
            model,
            space,
            digits.train,
            val,
            config=other,
            out_dir=tmp_path,
            resume=True,
            progress=False,
        )
    # a checkpoint of an older release, written before --arch-signal existed, resumes: the
    # option it lacks is read at its default (what that search ran with)
    path = tmp_path / SEARCH_CHECKPOINT
    state = read_checkpoint(path, SEARCH_FORMAT, "search")
    del state["config"]["arch_signal"]
    save_checkpoint(state, path)
    # options declared as not shaping the search (the choice of widths, the fine-tuning) resume
    after = tiny(
        warmup_epochs=1, search_epochs=1, select="evolution", population=4, finetune_epochs=3
    )
    outcome = search_widths(
        model, space, digits.train, val, config=after, out_dir=tmp_path, resume=True, progress=False
    )
    assert len(outcome.records) == 2


def fresh_loaders() -> tuple[Any, Any]:
    data = load_data("digits", seed=0)
    return data.train, data.val


def no_seconds(outcome: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in asdict(r).items() if k != "seconds"} for r in outcome.records]


@slow
def test_a_shared_warm_up_gives_the_result_of_a_search_alone(
    tmp_path: Path, trained: tuple[SearchSpace, nn.Module]
) -> None:
    space, model = trained
    base = tiny(warmup_epochs=1, search_epochs=1)
    path = warm_up(
        model, space, *fresh_loaders(), config=base, path=tmp_path / "w.pt", progress=False
    )
    state = torch.load(path, weights_only=True)
    assert [r["phase"] for r in state["records"]] == ["warmup"]

    # a search with another target, temperatures and architecture optimiser shares it
    changes = {"target_macs": "0.3", "tau0": 2.0, "arch_lr": 0.01, "hard": True}
    config = tiny(warmup_epochs=1, search_epochs=1, **changes)
    shared = search_widths(
        model, space, *fresh_loaders(), config=config, warmup=path, progress=False
    )
    alone = search_widths(model, space, *fresh_loaders(), config=config, progress=False)
    assert shared.spec == alone.spec
    assert no_seconds(shared) == no_seconds(alone)
    assert shared.records[0].tau == 2.0 and shared.records[0].phase == "warmup"
    a, b = shared.supernet.model.state_dict(), alone.supernet.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(
        torch.equal(x, y)
        for x, y in zip(shared.strategy.parameters(), alone.strategy.parameters(), strict=True)
    )

    # a search whose warm-up would differ (other weight lr, other warm-up length) refuses it
    for other in (tiny(warmup_epochs=1, search_epochs=1, lr=0.01), tiny(warmup_epochs=2)):
        with pytest.raises(ConfigError, match="warm-up"):
            search_widths(model, space, *fresh_loaders(), config=other, warmup=path, progress=False)

    # warming up again for another search of the same warm-up finds it done and leaves it
    before = path.read_bytes()
    assert warm_up(model, space, *fresh_loaders(), config=config, path=path, progress=False)
    assert path.read_bytes() == before
    with pytest.raises(ConfigError, match="warm-up"):
        warm_up(model, space, *fresh_loaders(), config=tiny(lr=0.01), path=path, progress=False)
