"""Helpers shared by the nas.width_search tests."""

from __future__ import annotations

from typing import Any

from nas.width_search import SearchConfig


def tiny(**changes: Any) -> SearchConfig:
    base: dict[str, Any] = {"warmup_epochs": 1, "search_epochs": 2, "finetune_epochs": 1}
    base |= {"population": 4, "generations": 1}  # the default chooser, small
    return SearchConfig(**(base | changes))
