"""One source of truth per option: every field of every config declares its flag, help, type
and range once, and the parsers, ``--config`` files, validation and ``args.yaml`` follow."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from nas.cli import main
from nas.cli.commands import COMMANDS
from nas.cli.parser import command_parser, load_command, parse_configs
from nas.errors import ConfigError
from nas.jobs.base import Command
from nas.options import (
    OptionField,
    Options,
    convert,
    from_mapping,
    option,
    option_fields,
    record,
)
from nas.width_search import SearchConfig


def commands() -> dict[str, Command]:
    """Every command of the command line (``plot pareto`` as one), by name."""
    out: dict[str, Command] = {}
    for name, (module, _) in COMMANDS.items():
        command = load_command(module)
        if command.subcommands:
            for kind, (_, sub) in command.subcommands.items():
                out[f"{name} {kind}"] = sub
        else:
            out[name] = command
    return out


COMMANDS_NOW = commands()
# what each command needs besides the option under test (its required options)
REQUIRED_VALUES: dict[str, str] = {
    "out_dir": "OUT",
    "weights": "missing-weights.pt",
    "arch": "missing-arch.json",
    "run": "missing-run",
    "dirs": "missing-sweep",
    "run_dir": "missing-run-dir",
}


def all_option_classes() -> set[type[Options]]:
    found: set[type[Options]] = set()
    todo: list[type[Options]] = [Options]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in found and sub.__module__.startswith("nas."):
                found.add(sub)
                todo.append(sub)
    return found


def flags_of(name: str) -> set[str]:
    parser = command_parser(f"nas {name}", COMMANDS_NOW[name])
    return {s for action in parser._actions for s in action.option_strings} | {
        action.dest for action in parser._actions if not action.option_strings
    }


def test_every_field_of_every_config_has_a_flag() -> None:
    flags = {name: flags_of(name) for name in COMMANDS_NOW}
    missing = []
    for cls in all_option_classes():
        for f in option_fields(cls):
            spelled = f.name if f.option.positional else f.flag
            if not any(spelled in command_flags for command_flags in flags.values()):
                missing.append(f"{cls.__name__}.{f.name} ({spelled})")
    assert missing == []
    assert {"--tau-min", "--out", "--quiet", "--no-augment", "--loader-workers"} <= flags["search"]


def test_a_command_takes_every_field_of_its_classes_but_the_excluded() -> None:
    for name, command in COMMANDS_NOW.items():
        flags = flags_of(name)
        for cls in command.options:
            for f in option_fields(cls):
                spelled = f.name if f.option.positional else f.flag
                assert (spelled in flags) != (f.name in command.exclude), (name, f.name)


def _cases() -> list[tuple[str, OptionField, Any]]:
    """(command, field, a value outside the field's range) for every ranged option."""
    cases = []
    for name, command in COMMANDS_NOW.items():
        for cls in command.options:
            for f in option_fields(cls):
                o = f.option
                if f.name in command.exclude or f.option.parse is not None:
                    continue
                bad: Any = None
                if o.gt is not None:
                    bad = o.gt
                elif o.ge is not None:
                    bad = o.ge - 1
                elif o.lt is not None:
                    bad = o.lt
                elif o.le is not None:
                    bad = o.le + 1
                if bad is None:
                    continue
                if f.type in (int, int | None):
                    bad = math.floor(bad)
                elif "tuple" in str(f.type):
                    bad = [float(bad)] * (2 if "float, float" in str(f.type) else 1)
                else:
                    bad = float(bad)
                cases.append((name, f, bad))
    return cases


CASES = _cases()


@pytest.mark.parametrize(
    ("name", "field", "bad"), CASES, ids=[f"{n}:{f.name}" for n, f, _ in CASES]
)
def test_an_out_of_range_value_is_the_same_error_from_a_flag_and_from_yaml(
    name: str,
    field: OptionField,
    bad: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command = COMMANDS_NOW[name]
    required: list[str] = []
    for r in sorted(command.required - {field.name}):
        f = next(f for cls in command.options for f in option_fields(cls) if f.name == r)
        value = REQUIRED_VALUES[r].replace("OUT", str(tmp_path / "out"))
        required += [value] if f.option.positional else [f.flag, value]
    text = ",".join(str(v) for v in bad) if isinstance(bad, list) else str(bad)
    words = name.split()
    assert main([*words, *required, field.flag, text]) == 2
    from_flag = capsys.readouterr().err
    if command.config_file:
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({field.name: bad}))
        assert main([*words, *required, "--config", str(config)]) == 2
        from_yaml = capsys.readouterr().err
        assert from_yaml == from_flag
    assert from_flag.startswith(f"error: {field.flag} must ")
    assert len(from_flag.strip().splitlines()) == 1 and "Traceback" not in from_flag
    assert not (tmp_path / "out").exists()


def _search_values() -> dict[str, Any]:
    """Flags of nas search with values other than the defaults."""
    return {
        "--out": "runs/elsewhere",
        "--space": "resnet20_b",
        "--dataset": "npz:data.npz",
        "--val-fraction": "0.25",
        "--no-augment": None,
        "--target-macs": "60M",
        "--width-ratios": "0.25,0.5,1",
        "--tau-min": "0.2",
        "--hard": None,
        "--order": "bn",
        "--kd-alpha": "0.5",
        "--select": "predictor",
        "--rank-pool": "100",
        "--seed": "3",
        "--quiet": None,
    }


@pytest.mark.parametrize("name", ["search", "sweep", "train", "transfer", "rank"])
def test_args_yaml_round_trips_through_config(name: str, tmp_path: Path) -> None:
    command = COMMANDS_NOW[name]
    argv: list[str] = []
    for flag, value in _search_values().items():
        if flags_of(name) >= {flag}:
            argv += [flag] if value is None else [flag, value]
    for r in sorted(command.required):
        f = next(f for cls in command.options for f in option_fields(cls) if f.name == r)
        argv += [f.flag, REQUIRED_VALUES[r]]
    parser = command_parser(f"nas {name}", command)
    configs = parse_configs(name, command, parser.parse_args(argv), {})
    # what a run writes: its options and the records of the run
    written = {"command": name, **record(*configs), "data": {"n_train": 1}, "environment": {}}
    path = tmp_path / "args.yaml"
    path.write_text(yaml.safe_dump(written, sort_keys=False))
    again = parse_configs(name, command, parser.parse_args(["--config", str(path)]), {})
    assert again == configs
    assert any(getattr(c, "seed", None) == 3 for c in configs)  # the flags were applied


def test_flags_win_over_the_config_file(tmp_path: Path) -> None:
    command = COMMANDS_NOW["search"]
    path = tmp_path / "c.yaml"
    path.write_text("tau0: 3.0\nseed: 5\nwidth_ratios: [0.5, 1.0]\n")
    parser = command_parser("nas search", command)
    _, search, *_ = parse_configs(
        "search", command, parser.parse_args(["--config", str(path), "--seed", "6"]), {}
    )
    assert isinstance(search, SearchConfig)
    assert (search.tau0, search.seed, search.width_ratios) == (3.0, 6, (0.5, 1.0))


def test_a_file_of_another_command_sets_only_the_shared_options(tmp_path: Path) -> None:
    sweep = {"command": "sweep", "trials": 9, "budgets": [0.5], "tau0": 2.0, "workers": 2}
    path = tmp_path / "args.yaml"
    path.write_text(yaml.safe_dump(sweep))
    command = COMMANDS_NOW["search"]
    parser = command_parser("nas search", command)
    commands = {k: v[0] for k, v in COMMANDS.items()}
    _, search, *_ = parse_configs(
        "search", command, parser.parse_args(["--config", str(path)]), commands
    )
    assert isinstance(search, SearchConfig)
    assert search.tau0 == 2.0  # the sweep's own options (trials, budgets, workers) are skipped
    # written by nas search itself, a sweep option is an unknown key
    path.write_text(yaml.safe_dump({**sweep, "command": "search"}))
    with pytest.raises(ConfigError, match=r"unknown option '(budgets|trials|workers)'"):
        parse_configs("search", command, parser.parse_args(["--config", str(path)]), commands)


def test_unknown_or_malformed_config_files_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    for text, message in (
        ("tau_zero: 1\n", "unknown option 'tau_zero'"),
        ("[1, 2]\n", "must hold a mapping"),
        ("tau0: [1\n", "cannot read --config"),
    ):
        path.write_text(text)
        assert main(["search", "--config", str(path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


# -- the declarations themselves -------------------------------------------------------------------
@dataclass
class Demo(Options):
    group: ClassVar[str] = "demo"

    count: int = option(3, "a count", ge=1)
    rate: float = option(0.5, "a rate", gt=0, le=1)
    ratios: tuple[float, ...] = option((0.5, 1.0), "ratios", gt=0, le=1)
    pair: tuple[float, float] | None = option(None, "two numbers")
    name: str = option("a", "a name", choices=("a", "b"))
    on: bool = option(True, "switch it off")
    label: str | None = option(None, "a label", flag="--tag")


def test_flags_are_derived_from_the_names_and_defaults() -> None:
    flags = {f.name: f.flag for f in option_fields(Demo)}
    assert flags == {
        "count": "--count",
        "rate": "--rate",
        "ratios": "--ratios",
        "pair": "--pair",
        "name": "--name",
        "on": "--no-on",  # a switch that defaults to on is switched off by its flag
        "label": "--tag",  # a flag named in the declaration
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"count": 0}, "--count must be >= 1, got 0"),
        ({"count": 2**63}, r"--count must be an integer in \[-2\^63, 2\^63\)"),
        ({"count": 1.5}, "--count must be an integer, got 1.5"),
        ({"count": True}, "--count must be an integer, got True"),
        ({"count": "3"}, "--count must be an integer, got '3'"),  # Python and YAML: typed
        ({"rate": 0.0}, r"--rate must be in \(0, 1\], got 0"),
        ({"rate": math.nan}, "--rate must be a finite number, got nan"),
        ({"rate": math.inf}, "--rate must be a finite number, got inf"),
        ({"rate": None}, "--rate needs a value"),
        ({"ratios": (0.5, 1.5)}, r"--ratios must hold values in \(0, 1\], got 0.5, 1.5"),
        ({"ratios": ()}, "--ratios must be a non-empty list of numbers"),
        ({"ratios": "0.5,1"}, "--ratios must be a non-empty list of numbers"),
        ({"pair": (1.0,)}, "--pair must be 2 comma-separated numbers"),
        ({"name": "c"}, "unknown --name 'c'; choose one of: a, b"),
        ({"on": 1}, "--no-on must be true or false, got 1"),
        ({"label": 5}, "--tag must be a string, got 5"),
    ],
)
def test_validation_names_the_flag_in_one_line(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{message}") as info:
        Demo(**changes).validate()
    assert "\n" not in str(info.value)


def test_command_line_text_is_converted_and_python_values_normalised() -> None:
    fields = {f.name: f for f in option_fields(Demo)}
    assert convert(fields["count"], "7", text=True) == 7
    assert convert(fields["ratios"], "0.25, 1", text=True) == (0.25, 1.0)
    assert convert(fields["pair"], "none", text=True) is None
    assert convert(fields["rate"], 1, text=False) == 1.0 and isinstance(
        convert(fields["rate"], 1), float
    )
    demo = Demo(ratios=[0.5, 1]).validate()  # type: ignore[arg-type]
    assert demo.ratios == (0.5, 1.0)  # a list from Python or YAML becomes the tuple


def test_records_read_back_as_the_same_config() -> None:
    demo = Demo(count=5, ratios=(0.25, 1.0), pair=(0.1, 0.9), name="b", on=False).validate()
    written = record(demo)
    assert written["ratios"] == [0.25, 1.0]  # plain YAML values
    values = from_mapping([Demo], yaml.safe_load(yaml.safe_dump(written)), "demo")
    assert Demo(**values).validate() == demo


def test_undeclared_fields_are_refused() -> None:
    @dataclass
    class Bare(Options):
        count: int = 3

    with pytest.raises(TypeError, match=r"not declared with nas\.options\.option"):
        option_fields(Bare)


def test_options_declare_what_they_shape() -> None:
    """The checkpoint, the warm-up, args.yaml and a sweep read these sets from the declarations
    (no module names an option by a string of its own)."""
    from nas.options import (
        AFTER_SEARCH,
        AFTER_WARMUP,
        LOCAL,
        NOT_RECORDED,
        tagged,
        target_tag,
        tunable,
    )
    from nas.runs import RunOptions
    from nas.sweep import SweepConfig
    from nas.sweep.config import AXES, budget_options
    from nas.width_search import SearchConfig

    assert tagged(SearchConfig, target_tag("macs")) == {"target_macs"}
    assert tagged(SearchConfig, target_tag("latency")) == {"target_latency"}
    assert {AXES[c].param for c in AXES} == budget_options() == {"target_macs", "target_latency"}
    after_search, after_warmup = (
        tagged(SearchConfig, AFTER_SEARCH),
        tagged(SearchConfig, AFTER_WARMUP),
    )
    assert {"select", "population", "finetune_epochs", "device"} <= after_search
    assert {"target_macs", "tau0", "budget", "tolerance"} <= after_warmup
    assert after_search.isdisjoint(after_warmup)
    assert {"width_ratios", "warmup_epochs", "seed", "weight_sampling"}.isdisjoint(
        after_search | after_warmup
    )  # these shape the warm-up itself
    assert tagged(RunOptions, NOT_RECORDED) == {"resume", "overwrite", "progress"}
    assert {"out_dir", "threads", "data_root"} <= tagged(RunOptions, LOCAL)
    assert "space" not in tagged(RunOptions, LOCAL)  # every process of a sweep shares it
    assert tagged(SweepConfig, LOCAL) == {"storage", "study", "uniform"}
    assert tunable(SearchConfig) == {
        "budget_weight": (0.5, 8.0),
        "tau0": (1.0, 10.0),
        "arch_lr": (0.005, 0.2),
    }
