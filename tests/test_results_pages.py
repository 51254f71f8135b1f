"""experiments/report.py: every committed results page is what the committed data render."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _report() -> object:
    spec = importlib.util.spec_from_file_location("report", ROOT / "experiments" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["report"] = module
    spec.loader.exec_module(module)
    return module


def test_every_results_page_is_what_its_data_render() -> None:
    report = _report()
    stale = report.render_all(check=True)  # type: ignore[attr-defined]
    assert not stale, f"regenerate with python experiments/report.py: {stale}"


def test_a_page_names_its_script_its_rows_provenance_and_says_when_nothing_is_measured() -> None:
    report = _report()
    pages = {b.name: b for b in report.BENCHMARKS}  # type: ignore[attr-defined]
    text = report.page(pages["search_quality"])  # type: ignore[attr-defined]
    assert "experiments/benchmarks/search_quality.py" in text
    assert "## Where and how it was measured" in text and "95 % CI" in text
    empty = report.Benchmark(  # type: ignore[attr-defined]
        "nothing_here", "Nothing", "search_quality.py", lambda folder: None
    )
    assert "Not measured yet in this release." in report.page(empty)  # type: ignore[attr-defined]
