"""``nas spaces``: the registered search spaces."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import search_spaces
from nas.jobs.base import Command
from nas.options import Options, option

__all__ = ["COMMAND", "SpacesOptions"]


@dataclass
class SpacesOptions(Options):
    group: ClassVar[str] = "spaces"

    json: bool = option(False, "machine-readable output")


def _cli(options: SpacesOptions) -> int:
    rows: list[dict[str, Any]] = []
    for name in search_spaces.list_spaces():
        entry = search_spaces.get_entry(name)
        rows.append(
            {
                "name": name,
                "description": entry.description,
                "default_input_size": list(entry.default_input_size or ()),
                "default_num_classes": entry.default_num_classes,
            }
        )
    if options.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}")
    print(
        "\nany torchvision classification model as torchvision:NAME (e.g. "
        "torchvision:mobilenet_v2); your own network as module.path:factory or "
        "path/to/file.py:factory (units found by tracing; see nas profile SPACE)"
    )
    return 0


COMMAND = Command(options=(SpacesOptions,), run=_cli, description="Lists the search spaces.")
