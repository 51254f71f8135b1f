"""Helpers shared by the command job tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _strict_json(path: Path) -> Any:
    """Parse as strict JSON: NaN/Infinity (which json.dumps writes by default) are refused."""

    def refuse(name: str) -> None:
        raise ValueError(f"{path} holds {name}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)
