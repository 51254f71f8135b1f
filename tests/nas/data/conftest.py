"""Helpers shared by the nas.data tests."""

from __future__ import annotations

import torch


def _first_batch(loader: object) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = next(iter(loader))  # type: ignore[call-overload]
    return x, y
