"""The ``nas`` command line.

Every command validates its input before it writes anything. A problem with the input (unknown
name, impossible value, missing or corrupt file) ends with one ``error: ...`` line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from nas.errors import ConfigError, NasError, first_line

if TYPE_CHECKING:
    from search_spaces import SearchSpace

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _input_size(text: str) -> tuple[int | None, int, int]:
    """``3x32x32`` -> (3, 32, 32); ``32x32`` -> (None, 32, 32); ``32`` -> (None, 32, 32)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad input size {text!r}; use CxHxW, HxW or S") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) not in (2, 3) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"bad input size {text!r}; use CxHxW, HxW or S")
    if len(parts) == 2:
        return None, parts[0], parts[1]
    return parts[0], parts[1], parts[2]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# -- nas spaces ------------------------------------------------------------------------------------
def cmd_spaces(args: argparse.Namespace) -> int:
    import search_spaces

    rows: list[dict[str, Any]] = []
    for name in search_spaces.list_spaces():
        entry = search_spaces.get_entry(name)
        rows.append(
            {
                "name": name,
                "description": entry.description,
                "default_input_size": list(entry.default_input_size),
                "default_num_classes": entry.default_num_classes,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}")
    return 0


# -- nas profile -----------------------------------------------------------------------------------
def cmd_profile(args: argparse.Namespace) -> int:
    import search_spaces
    from search_spaces import WidthSpec

    if args.space is None and args.arch is None:
        raise ConfigError("name a SPACE or pass --arch arch.json")
    if args.arch is not None:
        spec = WidthSpec.load(args.arch)
        if args.space is not None and args.space != spec.space:
            raise ConfigError(f"{args.arch} is a spec for space {spec.space}, not {args.space}")
        if args.input_size is not None or args.num_classes is not None:
            raise ConfigError("--input-size/--num-classes come from the spec when --arch is given")
        space = spec.get_space()
        widths = dict(spec.widths)
    else:
        entry = search_spaces.get_entry(args.space)
        channels, h, w = args.input_size or (3, *entry.default_input_size)
        space = search_spaces.create(
            args.space, num_classes=args.num_classes, in_channels=channels or 3, input_size=(h, w)
        )
        widths = space.full_widths()
    report = _profile_report(space, widths)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_profile(report, show_widths=args.arch is not None)
    return 0


def _profile_report(space: SearchSpace, widths: dict[str, int]) -> dict[str, Any]:
    macs = space.macs(widths)
    return {
        "space": space.name,
        "num_classes": space.num_classes,
        "in_channels": space.in_channels,
        "input_size": list(space.input_size),
        "macs": macs,
        "flops": 2 * macs,
        "macs_ratio": macs / space.macs(),
        "params": space.params(widths),
        "units": [
            {"name": u.name, "kind": u.kind, "width": widths[u.name], "max_width": u.max_width}
            for u in space.units
        ],
    }


def _print_profile(r: dict[str, Any], *, show_widths: bool) -> None:
    h, w = r["input_size"]
    print(f"space    {r['space']}  ({r['in_channels']}x{h}x{w} input, {r['num_classes']} classes)")
    print(f"MACs     {_human(r['macs'])}  ({r['macs']:,}, {r['macs_ratio']:.1%} of full width)")
    print(f"params   {_human(r['params'])}  ({r['params']:,})")
    units = r["units"]
    print(f"units    {len(units)}" + ("  (width / max)" if show_widths else "  (max width)"))
    name_w = max(len(u["name"]) for u in units)
    for u in units:
        width = f"{u['width']:>5} / " if show_widths else ""
        print(f"  {u['name']:<{name_w}}  {u['kind']:<5}  {width}{u['max_width']:>5}")


def _human(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


# -- nas train -------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from nas.workflows import DataOptions, train_baseline

    config = _train_config(args)
    m = train_baseline(
        out_dir=args.out,
        space=args.space,
        data=DataOptions(**_data_options(args)),
        config=config,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(
        f"{m['space']} on {m['dataset']}: test accuracy {m['test_acc']:.2f} % at "
        f"{_human(m['macs'])} MACs, {m['train_seconds']:.0f} s of training -> {args.out}"
    )
    return 0


def _add_train_args(p: argparse.ArgumentParser, *, lr: float) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=_positive_int, default=30)
    g.add_argument("--lr", type=float, default=lr, help=f"SGD learning rate (default {lr})")
    g.add_argument("--weight-decay", type=float, default=5e-4)
    g.add_argument("--label-smoothing", type=float, default=0.0)


def _train_config(args: argparse.Namespace) -> Any:
    """The ``TrainConfig`` of a command with the options of ``_add_train_args``."""
    from nas.train import TrainConfig

    return TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        device=args.device,
    )


def _data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options of ``_add_data_args``, as ``DataOptions`` fields."""
    return {
        "dataset": args.dataset,
        "data_root": args.data_root,
        "download": args.download,
        "image_size": args.image_size,
        "val_fraction": args.val_fraction,
        "batch_size": args.batch_size,
        "augment": not args.no_augment,
        "num_workers": args.loader_workers,
    }


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default="digits",
        help="digits (embedded, default), cifar10, cifar100, mnist, fashion-mnist, "
        "imagefolder:PATH or npz:PATH",
    )
    g.add_argument("--data-root", default=None, help="where torchvision datasets are stored")
    g.add_argument(
        "--download",
        action="store_true",
        help="let torchvision download the dataset (needs network)",
    )
    g.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="resize images to SxS (default: native size; 224 for imagefolder)",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the training set held out for validation (default 0.1)",
    )
    g.add_argument("--batch-size", type=_positive_int, default=128)
    g.add_argument(
        "--loader-workers", type=int, default=0, help="data loader processes (imagefolder)"
    )
    g.add_argument("--no-augment", action="store_true", help="switch off data augmentation")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed for everything (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps...")
    p.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty --out directory"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# -- nas extract -----------------------------------------------------------------------------------
def cmd_extract(args: argparse.Namespace) -> int:
    from nas.workflows import extract_to_dir

    report = extract_to_dir(
        args.weights, args.arch, args.out, order=args.order, overwrite=args.overwrite
    )
    print(
        f"extracted {report['space']}: {_human(report['macs'])} MACs "
        f"({float(report['macs_ratio']):.1%} of full), {_human(report['params'])} params "
        f"-> {args.out}"
    )
    return 0


# -- nas search ------------------------------------------------------------------------------------
def cmd_search(args: argparse.Namespace) -> int:
    from nas.workflows import run_search

    options = _run_options(args, resume=args.resume)
    m = run_search(options, _search_config(args))
    print(
        f"{m['space']} on {m['dataset']}: baseline {m['baseline_acc']:.2f} % at "
        f"{_human(m['baseline_macs'])} MACs -> searched {m['searched_acc']:.2f} % at "
        f"{_human(m['macs'])} MACs ({m['macs_ratio']:.1%}); relaxation gap "
        f"{m['relaxation_gap']:+.2f} points; search {m['search_seconds']:.0f} s -> {args.out}"
    )
    return 0


def _search_config(args: argparse.Namespace) -> Any:
    from nas.search import SearchConfig

    values = {f.name: getattr(args, f.name) for f in fields(SearchConfig) if hasattr(args, f.name)}
    values["width_ratios"] = tuple(args.width_ratios)
    if "target_macs" in values:
        values["target_macs"] = str(values["target_macs"])
    return SearchConfig(**values)


def _run_options(args: argparse.Namespace, **extra: Any) -> Any:
    from nas.workflows import RunOptions

    return RunOptions(
        **_data_options(args),
        out_dir=args.out,
        space=args.space,
        weights=args.weights,
        baseline_epochs=args.baseline_epochs,
        baseline_lr=args.baseline_lr,
        overwrite=args.overwrite,
        progress=not args.quiet,
        **extra,
    )


# -- nas sweep ---------------------------------------------------------------------------------
def cmd_sweep(args: argparse.Namespace) -> int:
    from nas.sweep import SweepConfig, run_sweep

    sweep = SweepConfig(
        trials=args.trials,
        macs_range=args.macs_range,
        budgets=tuple(args.budgets) if args.budgets is not None else None,
        tune=tuple(t for t in args.tune.split(",") if t),
        sampler=args.sampler,
        storage=args.storage,
        study=args.study,
        workers=args.workers,
        seed=args.seed,
    )
    m = run_sweep(_run_options(args), _search_config(args), sweep, uniform=not args.no_uniform)
    print(
        f"{m['complete']} trials, {m['pareto_points']} on the Pareto front, hypervolume "
        f"{m['hypervolume']:.4f} (uniform width {m['uniform_hypervolume']:.4f}) -> {args.out}"
    )
    return 0


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI, got {text!r}") from None
    return lo, hi


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _add_sweep_parser(sub: Any) -> None:
    from nas.sweep import TUNABLE, SweepConfig

    d = SweepConfig()
    p = sub.add_parser(
        "sweep",
        help="many searches as an Optuna study: accuracy/MAC Pareto front",
        description="Runs searches at many MAC budgets and hyper-parameters as one Optuna "
        "study sharing one baseline; re-running the same command resumes it and replaces "
        "failed or interrupted trials.",
    )
    p.add_argument("--out", default="runs/sweep", help="sweep directory (default runs/sweep)")
    p.add_argument("--trials", type=_positive_int, default=d.trials)
    p.add_argument(
        "--macs-range",
        type=_range,
        default=d.macs_range,
        help="MAC targets drawn from LO,HI (ratios; default 0.2,0.9)",
    )
    p.add_argument(
        "--budgets",
        type=_floats,
        default=None,
        help="MAC targets from this list instead, e.g. 0.25,0.5,0.75",
    )
    p.add_argument(
        "--tune",
        default=",".join(d.tune),
        help=f"search knobs each trial draws (of {', '.join(TUNABLE)}; '' = none)",
    )
    p.add_argument("--sampler", default=d.sampler, choices=("nsga2", "tpe"))
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna RDB storage URL, e.g. postgresql://host/db (default: a journal file in "
        "--out). Processes on other machines must use the same --out directory (a shared "
        "filesystem with working file locks) and the same options; SQLite serves one process "
        "at a time",
    )
    p.add_argument("--study", default=d.study, help="study name (default %(default)s)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes this command starts (not with SQLite); when one stops on an error, "
        "the others finish their trial and stop",
    )
    p.add_argument(
        "--no-uniform", action="store_true", help="skip the uniform-width baseline curve"
    )
    _add_search_args(p)
    p.set_defaults(handler=cmd_sweep)


def _add_plot_parser(sub: Any) -> None:
    p = sub.add_parser("plot", help="figures from finished runs")
    kinds = p.add_subparsers(dest="plot_kind", metavar="KIND", parser_class=_Parser)
    q = kinds.add_parser("pareto", help="overlay the Pareto fronts of several sweeps")
    q.add_argument("dirs", nargs="+", help="sweep directories (written by nas sweep)")
    q.add_argument("--labels", default=None, help="comma-separated legend labels")
    q.add_argument("--out", default="pareto.png", help="output PNG (default pareto.png)")
    q.set_defaults(handler=cmd_plot_pareto)
    p.set_defaults(handler=lambda _args: (p.print_help(), 2)[1])


def cmd_plot_pareto(args: argparse.Namespace) -> int:
    from nas.io import check_writable
    from nas.plots import plot_pareto

    dirs = [Path(d) for d in args.dirs]
    for d in dirs:
        if not (d / "pareto.csv").is_file():
            raise ConfigError(f"{d} is not a sweep directory (no pareto.csv)")
    labels = args.labels.split(",") if args.labels else [d.name for d in dirs]
    if len(labels) != len(dirs):
        raise ConfigError(f"{len(labels)} labels for {len(dirs)} directories")
    out = Path(args.out)
    if out.suffix.lower() != ".png" or out.is_dir():
        raise ConfigError(f"--out must be a .png file, got {out}")
    check_writable(out.parent)
    plot_pareto(list(zip(labels, dirs, strict=True)), out)  # checks every table first
    print(f"wrote {out}")
    return 0


def _ratios(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ratios, got {text!r}") from None
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"width ratios must lie in (0, 1], got {text!r}")
    return values


def _add_search_parser(sub: Any) -> None:
    from nas.search import SearchConfig

    p = sub.add_parser(
        "search",
        help="search widths under a MAC budget, extract and fine-tune the network",
        description="Gumbel-softmax width search under a MAC budget. Options may also come "
        "from --config file.yaml (keys as the long option names; args.yaml of a run works).",
    )
    p.add_argument("--out", default="runs/search", help="output directory (default runs/search)")
    p.add_argument(
        "--target-macs",
        default=SearchConfig().target_macs,
        help="MAC budget: a ratio of the full network (0.5) or absolute (60M)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _add_search_args(p)
    p.set_defaults(handler=cmd_search)


def _add_search_args(p: argparse.ArgumentParser) -> None:
    """Options shared by ``nas search`` and ``nas sweep`` (all but the budget and --out)."""
    from nas.search import SearchConfig
    from nas.strategies import list_strategies

    d = SearchConfig()
    p.add_argument("--config", default=None, help="YAML file of option defaults")
    p.add_argument("--space", default="resnet20", help="search space (default resnet20)")
    p.add_argument(
        "--weights",
        default=None,
        help="full-network state_dict to start from (else a baseline is trained)",
    )
    g = p.add_argument_group("search")
    g.add_argument(
        "--strategy", default=d.strategy, help=f"gate strategy: {', '.join(list_strategies())}"
    )
    g.add_argument(
        "--width-ratios",
        type=_ratios,
        default=list(d.width_ratios),
        help="width choices per unit as ratios of its maximum (default 0.1,...,1.0)",
    )
    g.add_argument(
        "--width-multiple",
        type=_positive_int,
        default=d.width_multiple,
        help="round every width choice to a multiple of this (e.g. 8: often faster on real "
        "hardware; default 1)",
    )
    g.add_argument("--tau0", type=float, default=d.tau0, help="initial temperature")
    g.add_argument("--tau-min", type=float, default=d.tau_min, help="final temperature")
    g.add_argument("--schedule", default=d.schedule, help="exponential, linear or cosine")
    g.add_argument("--hard", action="store_true", help="straight-through hard Gumbel samples")
    g.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs)
    g.add_argument("--search-epochs", type=int, default=d.search_epochs)
    g.add_argument("--lr", type=float, default=d.lr, help="weight learning rate (search)")
    g.add_argument("--arch-lr", type=float, default=d.arch_lr, help="Adam lr of the logits")
    g.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--arch-weight-decay", type=float, default=d.arch_weight_decay)
    g.add_argument("--budget-weight", type=float, default=d.budget_weight)
    g.add_argument(
        "--budget-band",
        type=float,
        default=d.budget_band,
        help="budget loss idles while the argmax net is at most this much under",
    )
    g.add_argument(
        "--tolerance",
        type=float,
        default=d.tolerance,
        help="final MACs within target x (1 +- tolerance); default 0.02",
    )
    g.add_argument(
        "--order",
        default=d.order,
        choices=("l1", "bn", "first"),
        help="channel importance used to order channels before the search",
    )
    g.add_argument(
        "--select",
        default=d.select,
        choices=("argmax", "predictor"),
        help="final widths: projected argmax of the logits (default), or the best of "
        "a GCN predictor's top-k (see nas rank)",
    )
    g.add_argument(
        "--rank-samples",
        type=_positive_int,
        default=d.rank_samples,
        help="--select predictor: sub-networks scored to fit the GCN",
    )
    g.add_argument(
        "--rank-pool",
        type=_positive_int,
        default=d.rank_pool,
        help="--select predictor: candidates ranked by the GCN",
    )
    g.add_argument(
        "--rank-top-k",
        type=_positive_int,
        default=d.rank_top_k,
        help="--select predictor: best candidates fine-tuned briefly",
    )
    g = p.add_argument_group("baseline and fine-tuning")
    g.add_argument("--baseline-epochs", type=int, default=30)
    g.add_argument("--baseline-lr", type=float, default=0.1)
    g.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs)
    g.add_argument("--finetune-lr", type=float, default=d.finetune_lr)
    g.add_argument(
        "--kd-alpha",
        type=float,
        default=d.kd_alpha,
        help="weight of distillation from the full network (0 = none)",
    )
    g.add_argument("--kd-temperature", type=float, default=d.kd_temperature)
    g.add_argument(
        "--from-scratch",
        action="store_true",
        help="retrain the found widths from random init instead of fine-tuning",
    )
    _add_data_args(p)
    _add_run_args(p)


def _apply_config_file(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Use ``--config FILE`` (YAML) as defaults of nas search or nas sweep; flags still win."""
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        return
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config is None:
        return
    import yaml

    path = Path(known.config)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read --config {path}: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of option names to values")
    command = next((a for a in argv if not a.startswith("-")), "search")
    if command not in ("search", "sweep"):
        raise ConfigError(f"--config is an option of nas search and nas sweep, not {command}")
    search = _subparser(parser, command)
    actions = {a.dest: a for a in search._actions}
    aliases = {"out_dir": "out", "num_workers": "loader_workers"}
    ignored = {"command", "data", "environment", "augment", "progress", "sweep", "uniform"}
    values = {}
    for key, value in data.items():
        dest = aliases.get(key, str(key).replace("-", "_"))
        if key in ignored or (key in ("trials", "workers") and dest not in actions):
            continue  # run records, and a sweep's own options when read by nas search
        if dest not in actions:
            raise ConfigError(f"--config {path}: unknown option {key!r}")
        values[dest] = _config_value(actions[dest], f"--config {path}: {key}", value)
    if "augment" in data:
        augment = _config_value(actions["no_augment"], f"--config {path}: augment", data["augment"])
        values["no_augment"] = not augment
    search.set_defaults(**values)


def _config_value(action: argparse.Action, where: str, value: Any) -> Any:
    """A ``--config`` value, converted and checked exactly like the same flag's text."""
    if action.nargs == 0:  # an on/off flag
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if value is None:
        if action.default is None:
            return None
        raise ConfigError(f"{where} needs a value")
    if isinstance(value, (bool, dict)):
        raise ConfigError(f"{where}: expected a value like the flag's, got {value!r}")
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    try:
        converted = action.type(text) if callable(action.type) else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {str(exc) or f'invalid value {value!r}'}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {value!r} is not one of {choices}")
    return converted


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("no sub-commands")


# -- nas transfer ----------------------------------------------------------------------------------
def cmd_transfer(args: argparse.Namespace) -> int:
    from nas.transfer import run_transfer
    from nas.workflows import DataOptions

    config = _train_config(args)
    m = run_transfer(
        args.arch,
        DataOptions(**_data_options(args)),
        config,
        out_dir=args.out,
        weights=args.weights,
        mode=args.mode,
        compare=args.compare,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    for row in m.get("compare", [m]):
        print(
            f"{row.get('network', 'found'):<8} {row['test_acc']:6.2f} %  "
            f"{_human(row['macs'])} MACs ({row['macs_ratio']:.1%})"
        )
    print(f"-> {args.out}")
    return 0


def _add_transfer_parser(sub: Any) -> None:
    p = sub.add_parser("transfer", help="train a found architecture on another dataset")
    p.add_argument("--arch", required=True, help="the found width spec (DIR/arch.json)")
    p.add_argument(
        "--weights",
        default=None,
        help="the found network's weights (DIR/model.pt), for --mode finetune",
    )
    p.add_argument(
        "--mode",
        default=None,
        choices=("scratch", "finetune"),
        help="train from scratch, or fine-tune from --weights (default: finetune "
        "when --weights is given, else scratch)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="also train the full and a uniform-width network of the same MACs",
    )
    p.add_argument("--out", default="runs/transfer", help="output directory")
    _add_train_args(p, lr=0.05)
    _add_data_args(p)
    _add_run_args(p)
    p.set_defaults(handler=cmd_transfer)


# -- nas rank --------------------------------------------------------------------------------------
def cmd_rank(args: argparse.Namespace) -> int:
    from nas.ranking import RankConfig, run_rank
    from predictors import PredictorConfig

    config = RankConfig(
        samples=args.samples,
        sampling=args.sampling,
        band=args.band,
        pool=args.pool,
        top_k=args.top_k,
        topk_epochs=args.topk_epochs,
        holdout=args.holdout,
        holdout_epochs=args.holdout_epochs,
        holdout_lr=args.holdout_lr,
        seed=args.seed,
        predictor=PredictorConfig(loss=args.loss, epochs=args.predictor_epochs, seed=args.seed),
    )
    m = run_rank(
        args.run, config, out_dir=args.out, overwrite=args.overwrite, progress=not args.quiet
    )
    if m["pool_ranked"] < m["pool"]:
        print(f"note: only {m['pool_ranked']:,} distinct candidates lie within the budget band")
    print(
        f"selected {_human(m['selected_macs'])} MACs ({m['selected_macs_ratio']:.1%}), "
        f"val acc {m['selected_val_acc']:.2f} % after the brief fine-tune"
    )

    def corr(value: float | None) -> str:
        return "  n/a " if value is None else f"{value:+.3f}"

    for name, c in m.get("correlations", {}).items():
        print(f"  {name:<9} Kendall tau {corr(c['kendall_tau'])}  Spearman {corr(c['spearman'])}")
    if "correlations_note" in m:
        print(f"  {m['correlations_note']}")
    return 0


def _add_rank_parser(sub: Any) -> None:
    from nas.ranking import RankConfig

    d = RankConfig()
    p = sub.add_parser(
        "rank",
        help="rank sub-networks of a finished search with a GCN "
        "predictor and measure the ranking against stand-alone training",
    )
    p.add_argument("--run", required=True, help="a nas search output directory")
    p.add_argument("--out", default=None, help="output directory (default RUN/rank)")
    p.add_argument(
        "--samples",
        type=_positive_int,
        default=d.samples,
        help="sub-networks scored with the supernet to fit the GCN",
    )
    p.add_argument(
        "--sampling",
        default=d.sampling,
        choices=("uniform", "band"),
        help="sample uniformly over the choices or in a MAC band around the budget",
    )
    p.add_argument(
        "--band",
        type=float,
        default=d.band,
        help=f"--sampling band: scored networks within target x (1 +- band) MACs ({d.band})",
    )
    p.add_argument(
        "--pool",
        type=_positive_int,
        default=d.pool,
        help="candidates ranked, MACs within the search's tolerance under the budget",
    )
    p.add_argument(
        "--top-k",
        type=_positive_int,
        default=d.top_k,
        help="best predicted candidates fine-tuned briefly",
    )
    p.add_argument("--topk-epochs", type=int, default=d.topk_epochs)
    p.add_argument(
        "--holdout",
        type=int,
        default=d.holdout,
        help="held-out sub-networks trained stand-alone for the evidence (0: skip, else >= 3)",
    )
    p.add_argument("--holdout-epochs", type=_positive_int, default=d.holdout_epochs)
    p.add_argument(
        "--holdout-lr",
        type=float,
        default=d.holdout_lr,
        help=f"learning rate of the held-out networks' stand-alone training ({d.holdout_lr})",
    )
    p.add_argument(
        "--loss",
        default="rank",
        choices=("rank", "mse"),
        help="GCN training loss: pairwise ranking (default) or regression",
    )
    p.add_argument("--predictor-epochs", type=_positive_int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_rank)


# -- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nas",
        description="Channel-width neural architecture search for "
        "ResNets: search, count MACs exactly, extract smaller networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("spaces", help="list the search spaces")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_spaces)

    p = sub.add_parser("profile", help="MACs, parameters and units of a space or a width spec")
    p.add_argument("space", nargs="?", default=None, help="search space name (see nas spaces)")
    p.add_argument("--arch", default=None, help="a width spec (arch.json) to profile")
    p.add_argument(
        "--input-size",
        type=_input_size,
        default=None,
        help="CxHxW (or HxW), e.g. 3x32x32; default: the space's",
    )
    p.add_argument(
        "--num-classes",
        type=_positive_int,
        default=None,
        help="classes of the head; default: the space's",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"space", "macs", "params", "units": [...]} as JSON',
    )
    p.set_defaults(handler=cmd_profile)

    p = sub.add_parser("train", help="train a full-width network (baseline / teacher)")
    p.add_argument("--space", default="resnet20", help="search space (default resnet20)")
    p.add_argument("--out", required=True, help="output directory")
    _add_train_args(p, lr=0.1)
    _add_data_args(p)
    _add_run_args(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("extract", help="slice a trained full network down to a width spec")
    p.add_argument("--weights", required=True, help="full-width state_dict (e.g. DIR/model.pt)")
    p.add_argument("--arch", required=True, help="width spec (arch.json) to extract")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--order",
        default="l1",
        choices=("l1", "bn", "first"),
        help="which channels to keep: largest filter L1 norm (default), largest BN "
        "scale, or the first ones",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty --out directory"
    )
    p.set_defaults(handler=cmd_extract)

    _add_search_parser(sub)
    _add_rank_parser(sub)
    _add_sweep_parser(sub)
    _add_transfer_parser(sub)
    _add_plot_parser(sub)
    return parser


def _one_line(exc: NasError) -> str:
    """The message of a user error as one line. An error raised in a DataLoader worker comes
    back wrapped with the worker's traceback; its own message is the wrapper's last line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and "Original Traceback" in str(exc):
        return lines[-1].split(": ", 1)[-1]
    return " ".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _apply_config_file(parser, argv)
    except NasError as exc:
        print(f"nas: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, one line already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except NasError as exc:
        print(f"nas {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (nas profile ... | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        hint = " (continue with --resume)" if args.command == "search" else ""
        print(f"nas {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
