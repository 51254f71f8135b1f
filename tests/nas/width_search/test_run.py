"""nas.width_search.run: a weight step of every ``--weight-sampling`` mode trains the supernet at
the widths that mode promises, repeatably from the seed; the sandwich rule trains the largest, the
smallest and random networks, each random one with every unit's width drawn on its own, all
distilled from the largest."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import Tensor

import nas.width_search.run as run_module
from nas.width_search import SearchConfig, SearchRun, search_budget
from nas.width_search.config import WEIGHT_SAMPLING
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


# -- every weight-sampling mode ----------------------------------------------------------------
Masks = dict[str, Tensor | None]  # one unit's mask as the forward pass saw it (None: full)


def weight_run(mode: str) -> SearchRun:
    """A fresh search of resnet20_b (the same initial weights and distribution every time) whose
    weight steps sample widths by ``mode``."""
    supernet, strategy = attached("resnet20_b", 0)
    g = torch.Generator().manual_seed(0)
    space = supernet.space
    batch = (
        torch.randn(8, space.in_channels, *space.input_size, generator=g),
        torch.randint(0, 4, (8,), generator=g),
    )
    config = SearchConfig(
        warmup_epochs=0,
        search_epochs=1,
        weight_sampling=mode,
        sandwich_samples=2,
        calib_images=8,
    ).validate()
    budget = search_budget(config, space)  # 50 % of the MACs, the default
    return SearchRun(
        supernet, strategy, config, budget, [batch], [batch], [batch], torch.device("cpu")
    )


def stepped(mode: str, seed: int) -> tuple[SearchRun, list[Masks]]:
    """One weight step of a fresh run under ``torch.manual_seed(seed)``, and the units' masks of
    every forward pass it made."""
    run = weight_run(mode)
    supernet = run.supernet
    passes: list[Masks] = []
    forward = supernet.forward

    def spy_forward(x: Tensor) -> Tensor:
        masks = {u: bns[0].mask for u, bns in supernet.bns.items()}
        passes.append({u: None if m is None else m.detach().clone() for u, m in masks.items()})
        return forward(x)

    x, y = run.weight_loader[0]  # type: ignore[index]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(supernet, "forward", spy_forward)
        torch.manual_seed(seed)
        loss = run.weight_step(x, y, tau=1.0)
    assert math.isfinite(loss) and loss > 0  # a cross-entropy
    return run, passes


def widths_of(masks: Masks, choices: Mapping[str, list[int]]) -> dict[str, int]:
    """The width of every unit whose mask keeps its first channels only (a member of the
    space); fails on a relaxed mask or a width outside the unit's choices."""
    widths = {}
    for unit, mask in masks.items():
        assert mask is not None, unit
        width = int(mask.sum())
        assert torch.equal(mask, (torch.arange(mask.numel()) < width).float()), unit
        assert width in choices[unit], (unit, width)
        widths[unit] = width
    return widths


def trains_one_sampled_member(run: SearchRun, passes: list[Masks]) -> None:
    assert len(passes) == 1
    widths_of(passes[0], run.strategy.choices)


def trains_one_relaxed_mixture(run: SearchRun, passes: list[Masks]) -> None:
    assert len(passes) == 1
    fractional = False
    for unit, mask in passes[0].items():
        assert mask is not None, unit
        assert float(mask[0]) == pytest.approx(1.0) and float(mask.min()) >= 0, unit
        assert bool((mask[1:] <= mask[:-1] + 1e-6).all()), unit  # nested: a soft width
        fractional |= bool(((mask > 1e-6) & (mask < 1 - 1e-6)).any())
    assert fractional  # a mixture of the widths, not one of them


def trains_the_sandwich(run: SearchRun, passes: list[Masks]) -> None:
    assert len(passes) == 2 + run.config.sandwich_samples
    assert all(m is None for m in passes[0].values())  # the largest
    assert widths_of(passes[1], run.strategy.choices) == run.smallest
    for masks in passes[2:]:
        widths_of(masks, run.strategy.choices)  # random members of the space


# what a weight step of each mode trains; a new mode must say what it trains here
TRAINS = {
    "hard": trains_one_sampled_member,
    "relaxed": trains_one_relaxed_mixture,
    "sandwich": trains_the_sandwich,
}


@pytest.mark.parametrize("mode", WEIGHT_SAMPLING)
def test_a_weight_step_of_every_sampling_mode_trains_its_widths_and_repeats_from_the_seed(
    mode: str,
) -> None:
    assert mode in TRAINS, f"--weight-sampling {mode}: add what its weight step trains to TRAINS"
    fresh = weight_run(mode)
    initial = [p.detach().clone() for p in fresh.supernet.weights()]
    arch = [p.detach().clone() for p in fresh.strategy.arch_parameters()]

    run, passes = stepped(mode, 1)
    TRAINS[mode](run, passes)
    weights = [p.detach() for p in run.supernet.weights()]
    assert any(not torch.equal(a, b) for a, b in zip(initial, weights, strict=True))
    assert all(bool(torch.isfinite(w).all()) for w in weights)
    # the weights only: the architecture parameters wait for their own step
    after = run.strategy.arch_parameters()
    assert all(torch.equal(a, b) for a, b in zip(arch, after, strict=True))

    again, passes_again = stepped(mode, 1)  # the same seed: the same step
    assert all(torch.equal(a, b) for a, b in zip(weights, again.supernet.weights(), strict=True))
    for masks, masks_again in zip(passes, passes_again, strict=True):
        assert masks.keys() == masks_again.keys()
        for unit, m in masks.items():
            other = masks_again[unit]
            assert (m is None and other is None) or (
                m is not None and other is not None and torch.equal(m, other)
            ), unit
    other_seed, _ = stepped(mode, 2)  # another seed: other widths sampled
    assert any(
        not torch.equal(a, b) for a, b in zip(weights, other_seed.supernet.weights(), strict=True)
    )
