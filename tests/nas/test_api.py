"""The public API: a curated ``nas.__all__``, names imported on first use, light imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nas


def test_all_lists_what_users_call() -> None:
    wanted = {
        "search",
        "SearchConfig",
        "GateStrategy",
        "register_strategy",
        "run_sweep",
        "SweepConfig",
        "transfer",
        "extract",
        "load_model",
        "count_macs",
        "load_data",
        "train_model",
        "create_space",
        "WidthSpec",
        "Registry",
    }
    assert wanted <= set(nas.__all__)
    assert nas.__all__ == sorted(nas.__all__) and len(set(nas.__all__)) == len(nas.__all__)


@pytest.mark.parametrize("name", [n for n in nas.__all__ if n != "__version__"])
def test_every_public_name_resolves_to_its_definition(name: str) -> None:
    value = getattr(nas, name)
    assert value is not None
    if hasattr(value, "__module__") and callable(value):
        # defined in a package of the toolkit, not re-wrapped on the way
        assert value.__module__.split(".")[0] in ("nas", "search_spaces")


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        nas.nope  # noqa: B018


def _loaded_after(code: str) -> set[str]:
    """Top-level modules loaded in a fresh interpreter after running ``code``."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys\n{code}\nprint(sorted({{m.split('.')[0] for m in sys.modules}}))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return set(eval(out.strip().splitlines()[-1]))  # a printed list of names


HEAVY = {"matplotlib", "optuna", "pandas", "sklearn", "scipy"}


@pytest.mark.slow  # a fresh interpreter each
@pytest.mark.parametrize("package", ["search_spaces", "predictors"])
def test_lower_packages_load_nothing_heavy_or_above_them(package: str) -> None:
    loaded = _loaded_after(f"import {package}")
    assert not loaded & HEAVY
    assert "nas" not in loaded and ("predictors" not in loaded or package == "predictors")


@pytest.mark.slow  # fresh interpreters
def test_import_nas_and_the_help_load_no_torch() -> None:
    assert "torch" not in _loaded_after("import nas")
    code = "from nas.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert not _loaded_after(code) & {"torch", *HEAVY}
