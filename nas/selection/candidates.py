"""One-shot scores of width assignments on a trained supernet (:class:`CandidateScorer`).

Where searched widths clearly beat uniform width (AutoSlim, MetaPruning, OFA, EagleEye), the
widths are chosen by scoring candidates directly on the trained supernet, each after its
BatchNorm statistics are recomputed for exactly its widths, on a held-out split. A candidate's
score here is its validation loss and accuracy with the supernet's weights, its BN statistics
recomputed on the search's calibration images (``--calib-images`` training images).

Scoring goes through the extracted network (sliced tensors, physically smaller: a candidate at a
quarter of the MACs costs about a quarter of the full network's forward passes), which computes
exactly what the masked supernet computes after the same recalibration (the tests check it to
1e-5); the supernet's own BN statistics are never touched. The validation images are read once
and kept on the device (channels-last; a split of more than :data:`KEEP_IMAGES` images is read
again for each candidate instead); scores are cached by widths, so a chooser that meets a
candidate again pays nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from nas.engine import EvalResult, evaluate
from nas.extraction import extract
from nas.supernet import Supernet, recalibrate_bn
from search_spaces import WidthSpec

__all__ = ["KEEP_IMAGES", "CandidateScorer"]

KEEP_IMAGES = 20_000  # a validation split up to this size is read once and kept on the device


class CandidateScorer:
    """Validation loss and accuracy of width assignments with the supernet's weights, each after
    recomputing its BN statistics on ``calibration`` (training batches); cached by widths.

    ``scored`` counts the distinct candidates scored, ``seconds`` the time spent scoring them.
    """

    def __init__(
        self,
        supernet: Supernet,
        calibration: Sequence[tuple[Tensor, Tensor]],
        val_loader: Iterable[Any],
        device: torch.device | str,
    ) -> None:
        if not calibration:
            raise ValueError("scoring candidates needs calibration batches for the BN statistics")
        self.supernet = supernet
        self.space = supernet.space
        self.device = torch.device(device)
        fast = torch.channels_last
        self.calibration = [
            (x.to(self.device).contiguous(memory_format=fast), y) for x, y in calibration
        ]
        self.val: Iterable[Any] = _kept(val_loader, self.device, KEEP_IMAGES)
        self.cache: dict[tuple[int, ...], EvalResult] = {}
        self.seconds = 0.0

    @property
    def scored(self) -> int:
        """Distinct candidates scored so far."""
        return len(self.cache)

    def key(self, widths: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(int(widths[u.name]) for u in self.space.units)

    @torch.no_grad()
    def score(self, widths: Mapping[str, int] | WidthSpec) -> EvalResult:
        """The candidate's validation loss and accuracy (cached)."""
        if isinstance(widths, WidthSpec):
            widths = widths.widths
        key = self.key(widths)
        found = self.cache.get(key)
        if found is not None:
            return found
        start = time.perf_counter()
        spec = self.space.spec(dict(widths))
        small = extract(self.supernet.model.state_dict(), spec)
        small = small.to(self.device).to(memory_format=torch.channels_last)
        recalibrate_bn(small, self.calibration, self.device)
        result = evaluate(small, self.val, device=self.device)
        self.cache[key] = result
        self.seconds += time.perf_counter() - start
        return result

    def score_many(
        self,
        candidates: Sequence[Mapping[str, int] | WidthSpec],
        *,
        progress: bool = False,
        desc: str = "score candidates",
    ) -> list[EvalResult]:
        """Scores of ``candidates`` in order (each distinct one scored once)."""
        return [
            self.score(w) for w in tqdm(candidates, desc=desc, disable=not progress, leave=False)
        ]


def _kept(loader: Iterable[Any], device: torch.device, limit: int) -> Iterable[Any]:
    """The loader's batches read once and kept on ``device`` (channels-last), or the loader
    itself (read again for every candidate) when it holds more than ``limit`` images."""
    kept: list[tuple[Tensor, Tensor]] = []
    count = 0
    for x, y in loader:
        count += int(x.shape[0])
        if count > limit:
            return loader
        kept.append((x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)))
    return kept
