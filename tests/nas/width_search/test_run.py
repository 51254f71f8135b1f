"""nas.width_search.run: the sandwich rule trains the largest, the smallest and random networks,
each random one with every unit's width drawn on its own, all distilled from the largest."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import Tensor

import nas.width_search.run as run_module
from nas.width_search import SearchConfig, SearchRun, search_budget
from tests.nas.conftest import attached

pytestmark = pytest.mark.usefixtures("one_thread")


def sandwich_run(samples: int = 2) -> SearchRun:
    supernet, strategy = attached("resnet20_b", 0)
    space = supernet.space
    g = torch.Generator().manual_seed(0)
    batch = (
        torch.randn(8, space.in_channels, *space.input_size, generator=g),
        torch.randint(0, 4, (8,), generator=g),
    )
    config = SearchConfig(
        target_macs="0.3",
        warmup_epochs=0,
        search_epochs=1,
        weight_sampling="sandwich",
        sandwich_samples=samples,
        calib_images=8,
    ).validate()
    return SearchRun(
        supernet,
        strategy,
        config,
        search_budget(config, space),
        [batch],
        [batch],
        [batch],
        torch.device("cpu"),
    )


def test_the_sandwich_step_trains_largest_smallest_and_random_members_from_the_largest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = sandwich_run(samples=2)
    supernet = run.supernet
    current: list[dict[str, int] | None] = [None]
    widths_seen: list[dict[str, int] | None] = []
    outputs: list[Tensor] = []
    teachers: list[Tensor] = []
    set_widths, set_masks, forward = supernet.set_widths, supernet.set_masks, supernet.forward

    def spy_widths(widths: Mapping[str, int] | None) -> None:
        current[0] = None if widths is None else dict(widths)
        set_widths(widths)

    def spy_masks(masks: Any) -> None:
        if masks is None:
            current[0] = None
        set_masks(masks)

    def spy_forward(x: Tensor) -> Tensor:
        out = forward(x)
        widths_seen.append(current[0])
        outputs.append(out.detach().clone())
        return out

    kd = run_module.kd_loss

    def spy_kd(student: Tensor, teacher: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        teachers.append(teacher.clone())
        return kd(student, teacher, *args, **kwargs)

    monkeypatch.setattr(supernet, "set_widths", spy_widths)
    monkeypatch.setattr(supernet, "set_masks", spy_masks)
    monkeypatch.setattr(supernet, "forward", spy_forward)
    monkeypatch.setattr(run_module, "kd_loss", spy_kd)
    before = [p.detach().clone() for p in supernet.weights()]
    x, y = run.weight_loader[0]  # type: ignore[index]
    run.weight_step(x, y, tau=1.0)

    assert len(widths_seen) == 4  # largest, smallest, two random members
    assert widths_seen[0] is None  # the largest: full width, on the labels
    assert widths_seen[1] == run.smallest
    choices = run.strategy.choices
    for widths in widths_seen[2:]:
        assert widths is not None and all(widths[u] in c for u, c in choices.items())
    assert len(teachers) == 3  # every other member distilled from the largest's outputs
    assert all(torch.equal(t, outputs[0]) for t in teachers)
    after = list(supernet.weights())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))  # one step


def test_random_members_draw_every_units_width_on_its_own_over_all_choices() -> None:
    """Not one shared width multiplier (which trains only uniform networks), not the learned
    distribution (which concentrates on one network as the search decides)."""
    run = sandwich_run()
    with torch.no_grad():  # a decided distribution: the random members must ignore it
        for logits in run.strategy.arch_parameters():
            logits.zero_()
            logits[0] = 50.0
    torch.manual_seed(0)
    draws = [run.random_widths() for _ in range(400)]
    choices = run.strategy.choices
    for unit, options in choices.items():
        assert {d[unit] for d in draws} == set(options), unit  # every choice is trained
    ratios = [[d[u] / max(c) for u, c in choices.items()] for d in draws]
    spread = [max(r) - min(r) for r in ratios]
    assert sum(s > 0.3 for s in spread) > 0.9 * len(draws)  # units differ within a draw
    torch.manual_seed(0)
    assert [run.random_widths() for _ in range(400)] == draws  # seeded
