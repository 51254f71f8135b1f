"""The one generic registry: strict names, options checked against the factory, and every
registry of the toolkit built on it."""

from __future__ import annotations

import importlib

import pytest

from nas.errors import ConfigError, DataError, NasError, SpaceError
from nas.registry import Registry

# every registry of the toolkit: (module, attribute, the error an unknown name raises)
REGISTRIES = [
    ("search_spaces", "SPACES", SpaceError),
    ("nas.data", "DATASET_KINDS", DataError),
    ("nas.cost", "COST_MODELS", ConfigError),
    ("nas.importance", "CRITERIA", ConfigError),
    ("nas.gates", "STRATEGIES", ConfigError),
    ("nas.gates", "SCHEDULES", ConfigError),
    ("nas.selection", "SELECTIONS", ConfigError),
]


def test_register_get_names_and_describe() -> None:
    reg = Registry[object]("widget")

    @reg.register("b")
    def make_b() -> str:
        """Makes a b."""
        return "b"

    reg.register("a", lambda: "a", description="makes an a")
    assert reg.names() == ["b", "a"]  # registration order
    assert reg.get("b") is make_b and "a" in reg and len(reg) == 2 and list(reg) == ["b", "a"]
    assert reg.describe("b") == "Makes a b." and reg.describe("a") == "makes an a"
    reg.unregister("b")
    assert reg.names() == ["a"]


def test_duplicates_are_refused_and_unknown_names_answered_with_the_list() -> None:
    reg = Registry[object]("widget", error=DataError)
    reg.register("a", 1)
    with pytest.raises(DataError, match="widget 'a' is already registered"):
        reg.register("a", 2)
    assert reg.get("a") == 1  # the first registration stands
    with pytest.raises(DataError, match="unknown widget 'z'; choose one of: a"):
        reg.get("z")
    with pytest.raises(DataError, match="unknown widget"):
        reg.check("z")
    assert reg.check("a") == "a"


def test_create_passes_options_and_refuses_unknown_ones() -> None:
    reg = Registry[object]("strategy")

    @reg.register("scaled")
    def scaled(x: int, *, factor: int = 2, offset: int = 0) -> int:
        return x * factor + offset

    @reg.register("plain")
    def plain(x: int) -> int:
        return x

    @reg.register("anything")
    def anything(x: int, **options: int) -> int:
        return x + sum(options.values())

    assert reg.create("scaled", 3) == 6
    assert reg.create("scaled", 3, factor=3, offset=1) == 10
    with pytest.raises(ConfigError, match=r"'scaled' has no option 'size' \(its options: "):
        reg.create("scaled", 3, size=1)
    with pytest.raises(ConfigError, match=r"'plain' has no option 'factor' \(its options: none"):
        reg.create("plain", 3, factor=2)
    assert reg.create("anything", 1, a=1, b=2) == 4  # **options: anything goes


@pytest.mark.parametrize(("module", "attr", "error"), REGISTRIES, ids=[r[1] for r in REGISTRIES])
def test_every_registry_of_the_toolkit_is_strict(
    module: str, attr: str, error: type[NasError]
) -> None:
    reg = getattr(importlib.import_module(module), attr)
    assert isinstance(reg, Registry) and len(reg) >= 1
    names = reg.names()
    assert len(set(names)) == len(names)
    first = names[0]
    with pytest.raises(error, match="already registered"):
        reg.register(first, reg.get(first))
    with pytest.raises(error, match=f"choose one of: {', '.join(names)}"):
        reg.get("no-such-entry")
    assert all(isinstance(reg.describe(n), str) and reg.describe(n) for n in names)
