"""Render every results page of the documentation from the committed result files.

Each benchmark writes its rows (with the commit, date, machine, threads, torch version and the
exact command) under ``experiments/results/<benchmark>/``; this script turns them into
``docs/results/<benchmark>.md``: what the benchmark measures (its script's own description),
where and how each row was measured, and its tables (paired differences with standard errors
and 95 % confidence intervals), using the benchmark's own report function, so a page says
exactly what its data say. Figures the benchmark draws from its rows go beside the page.
``tests/test_results_pages.py`` fails when a committed page differs from what the committed data
render.

    python experiments/report.py            # every page
    python experiments/report.py --check    # exit 1 (naming the pages) if a page is stale
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUBSET = "cifar10-5k.npz"
RESULTS = ROOT / "experiments" / "results"
PAGES = ROOT / "docs" / "results"
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))
sys.path.insert(0, str(ROOT / "experiments"))
from make_cifar_subset import EXPECTED_SHA256 as SUBSET_SHA256  # noqa: E402


@dataclass(frozen=True)
class Benchmark:
    """A results page: its title, the script that measures it, how its rows become tables."""

    name: str
    title: str
    script: str
    render: Callable[[Path], str | None]  # the tables of the results folder, None: no data
    figure: Callable[[Path, Path], None] | None = None  # draws the page's figure from the data


def _rows(folder: Path) -> list[dict[str, Any]]:
    path = folder / "results.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _module(name: str) -> Any:
    return importlib.import_module(name)


def _search_quality(folder: Path) -> str | None:
    sq = _module("search_quality")
    rows = [r for r in _rows(folder) if sq.same_settings(r, sq.SETTINGS)]
    return sq.report(rows) if rows else None


def _simple(module: str) -> Callable[[Path], str | None]:
    def render(folder: Path) -> str | None:
        rows = _rows(folder)
        return _module(module).report(rows) if rows else None

    return render


def _method_table(folder: Path) -> str | None:
    mt = _module("method_table")
    path = folder / "results.jsonl"
    if not path.is_file():
        return None
    rows = mt.load_rows(path)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    return str(mt.markdown(mt.table(rows, methods))) if rows else None


def _vs_torch_pruning(folder: Path) -> str | None:
    path = folder / "results.json"
    if not path.is_file():
        return None
    vs = _module("vs_torch_pruning")
    data = json.loads(path.read_text())
    rows = [vs.row_from_dict(r) for r in data.pop("rows")]
    return str(vs.report(rows, data))


def _verbatim(file: str) -> Callable[[Path], str | None]:
    def render(folder: Path) -> str | None:
        path = folder / file
        return path.read_text() if path.is_file() else None

    return render


def _drawn(module: str, png: str, *extra: str) -> Callable[[Path, Path], None]:
    """The benchmark's ``figure(rows, path, *extra)`` drawn beside its page."""

    def draw(folder: Path, pages: Path) -> None:
        rows = _rows(folder)
        if rows:
            _module(module).figure(rows, pages / png, *extra)

    return draw


BENCHMARKS = (
    Benchmark(
        "search_quality",
        "Width search against uniform width",
        "search_quality.py",
        _search_quality,
    ),
    Benchmark(
        "method_table", "Every method against uniform width", "method_table.py", _method_table
    ),
    Benchmark(
        "feature_distillation",
        "Kernel feature distillation",
        "feature_distillation.py",
        _simple("feature_distillation"),
    ),
    Benchmark(
        "compression",
        "Weight clustering and width pruning: size against accuracy",
        "compression.py",
        _simple("compression"),
        _drawn("compression", "compression.png", SUBSET.removesuffix(".npz")),
    ),
    Benchmark(
        "compound_scaling",
        "Compound scaling against uniform width",
        "compound_scaling.py",
        _simple("compound_scaling"),
        _drawn("compound_scaling", "compound_scaling.png"),
    ),
    Benchmark(
        "vs_torch_pruning",
        "Extraction against Torch-Pruning",
        "vs_torch_pruning.py",
        _vs_torch_pruning,
    ),
    Benchmark("runtimes", "Runtimes of a found network", "runtimes.py", _verbatim("results.md")),
)


def description(script: str) -> str:
    """The benchmark script's description: its docstring up to the first command example."""
    text = (ROOT / "experiments" / "benchmarks" / script).read_text()
    doc = text.split('"""', 2)[1]
    kept = []
    for line in doc.strip().splitlines():
        if line.startswith("    python "):
            break
        kept.append(line)
    return "\n".join(kept).strip().replace("\\\\", "\\")


def provenance(folder: Path) -> str:
    """Where and how the rows were measured: each distinct commit, machine, threads, torch
    version and command, with how many rows."""
    rows = _rows(folder)
    seen: dict[tuple[str, ...], int] = {}
    for r in rows:
        key = tuple(str(r.get(k, "")) for k in ("commit", "machine", "threads", "torch", "command"))
        seen[key] = seen.get(key, 0) + 1
    if not seen:
        return ""
    out = ["| rows | commit | machine | threads | torch | command |", "| --- " * 6 + "|"]
    for (commit, machine, threads, torch, command), n in seen.items():
        out.append(f"| {n} | {commit} | {machine} | {threads} | {torch} | `{command}` |")
    return "\n".join(out) + "\n"


def page(b: Benchmark) -> str:
    """The markdown page of ``b`` from its committed results."""
    folder = RESULTS / b.name
    body = b.render(folder)
    parts = [
        f"# {b.title}",
        "",
        f"Generated by `python experiments/report.py` from `experiments/results/{b.name}/`; "
        f"measured by `experiments/benchmarks/{b.script}`. Do not edit by hand.",
        "",
        "## What it measures",
        "",
        description(b.script),
        "",
        "## Results",
        "",
        body.strip() if body else "Not measured yet in this release.",
        "",
    ]
    if body and b.figure is not None:
        parts += [f"![{b.title}]({b.name}.png)", ""]
    where = provenance(folder)
    if where:
        parts += ["## Where and how it was measured", "", where.strip(), ""]
        parts += [_data_line(folder), ""]
    return "\n".join(parts).rstrip() + "\n"


def _data_line(folder: Path) -> str:
    """The data the rows were measured on, with the checksum of the project's subset."""
    files = sorted({Path(str(r.get("dataset", "")).partition(":")[2]).name for r in _rows(folder)})
    named = [f for f in files if f]
    if SUBSET in named:
        return (
            f"Data: `{SUBSET}` (SHA-256 `{SUBSET_SHA256}`), built from the official CIFAR-10 "
            "download by `python experiments/make_cifar_subset.py --data-root DIR --out "
            f"{SUBSET}`."
        )
    return "Data: " + (", ".join(f"`{f}`" for f in named) if named else "as in the command.")


def render_all(check: bool = False) -> list[str]:
    """Write every page (and figure); with ``check`` write nothing and return the stale ones."""
    stale = []
    PAGES.mkdir(parents=True, exist_ok=True)
    for b in BENCHMARKS:
        text = page(b)
        path = PAGES / f"{b.name}.md"
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
            continue
        path.write_text(text)
        if b.figure is not None:
            b.figure(RESULTS / b.name, PAGES)
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only say which pages are stale")
    args = parser.parse_args()
    stale = render_all(check=args.check)
    if stale:
        print("stale (run python experiments/report.py): " + ", ".join(stale))
        raise SystemExit(1)
    if not args.check:
        print(f"wrote {len(BENCHMARKS)} pages under {PAGES.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
