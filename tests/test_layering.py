"""The architecture contract: packages import only downward, and nothing imports in a cycle.

Layers, bottom to top: ``search_spaces`` <- ``predictors`` <- ``nas``. Inside ``nas`` the tiers
below (the README's "Architecture" section documents them): a module may import from its own
tier or a lower one, never from a higher one, and no chain of imports may come back to where
it started. Imports inside functions count. Imports only for type checkers (under
``if TYPE_CHECKING:``) do not count for the tiers, but they do for cycles: a circle that only a
type checker follows is still a circle for a reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("search_spaces", "predictors", "nas")  # bottom -> top

# the tiers of nas, bottom -> top (a package or a module directly under nas/)
NAS_TIERS: tuple[tuple[str, ...], ...] = (
    ("errors", "registry", "io", "options", "rundir"),  # basics
    ("data", "engine", "cost", "plots"),  # foundations
    ("importance", "extraction", "supernet"),  # networks
    ("runs",),  # what every run shares: its options, args.yaml, the baseline
    ("gates",),  # gate strategies
    ("selection",),  # choosing widths from a supernet
    ("width_search", "pruning", "compression", "scaling", "interpretation"),  # methods
    ("transfer_learning",),  # tasks
    ("jobs",),  # one job per command
    ("sweep",),  # many search jobs
    ("cli",),  # the command line
    ("__init__", "__main__"),  # the public API
)
MAX_LINES = 500


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    return skip


def imported(
    name: str, path: Path, known: dict[str, Path], *, type_checking: bool = False
) -> Iterator[str]:
    """The project modules ``name`` imports (at any depth: in functions too), imports under
    ``if TYPE_CHECKING:`` only with ``type_checking``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if type_checking else type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    known = modules()
    return {
        name: set(imported(name, path, known, type_checking=type_checking))
        for name, path in known.items()
    }


def tier(module: str) -> int:
    """The position of a module of nas among NAS_TIERS."""
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    for i, members in enumerate(NAS_TIERS):
        if key in members:
            return i
    raise AssertionError(f"{module} belongs to no tier of NAS_TIERS: add its package there")


def test_every_module_of_nas_has_a_tier() -> None:
    for name in modules():
        if name.startswith("nas"):
            tier(name)


def test_packages_import_only_downward() -> None:
    upward = []
    for a, targets in graph().items():
        for b in targets:
            pa, pb = a.split(".")[0], b.split(".")[0]
            if PACKAGES.index(pb) > PACKAGES.index(pa):
                upward.append(f"{a} -> {b}")
            elif pa == pb == "nas" and tier(b) > tier(a):
                upward.append(f"{a} (tier {tier(a)}) -> {b} (tier {tier(b)})")
    assert upward == []


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles() -> None:
    """No circle anywhere, counting imports inside functions and those for type checkers."""
    assert strongly_connected(graph(type_checking=True)) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles_within_a_package(package: str) -> None:
    """The same, package by package (``search_spaces``, ``predictors``, ``nas`` and its
    sub-packages), so that a failure names the package whose modules go round."""
    inside = {
        a: {b for b in targets if b.split(".")[0] == package}
        for a, targets in graph(type_checking=True).items()
        if a.split(".")[0] == package
    }
    assert strongly_connected(inside) == []


def test_the_checker_sees_cycles_and_upward_imports(tmp_path: Path) -> None:
    """The contract can fail: a cycle through a function-level import is found, and an import
    under ``if TYPE_CHECKING:`` is an edge for the cycle check only."""
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / "a.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg.b import B\n"
        "def f() -> None:\n    from pkg.c import C\n",
        encoding="utf-8",
    )
    known = {"pkg.a": source, "pkg.b": source, "pkg.c": source}
    assert set(imported("pkg.a", source, known)) == {"pkg.c"}
    assert set(imported("pkg.a", source, known, type_checking=True)) == {"pkg.b", "pkg.c"}
    assert tier("nas.cli.main") > tier("nas.width_search.loop") > tier("nas.errors")
    with pytest.raises(AssertionError, match="no tier"):
        tier("nas.unknown_package.module")


def test_no_module_is_overlong() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
