"""The ``nas`` command line.

Every command validates its input before it writes anything. A problem with the input (unknown
name, impossible value, missing or corrupt file) ends with one ``error: ...`` line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from nas.errors import ConfigError, NasError

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
    from nas.train import TrainConfig
    from nas.workflows import DataOptions, train_baseline

    config = TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        seed=args.seed,
        device=args.device,
    )
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
        "num_workers": args.workers,
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
    g.add_argument("--workers", type=int, default=0, help="data loader workers (imagefolder)")
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
    from nas.search import SearchConfig
    from nas.workflows import RunOptions, run_search

    options = RunOptions(
        **_data_options(args),
        out_dir=args.out,
        space=args.space,
        weights=args.weights,
        baseline_epochs=args.baseline_epochs,
        baseline_lr=args.baseline_lr,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    values = {f.name: getattr(args, f.name) for f in fields(SearchConfig)}
    config = SearchConfig(
        **values | {"target_macs": str(args.target_macs), "width_ratios": tuple(args.width_ratios)}
    )
    m = run_search(options, config)
    print(
        f"{m['space']} on {m['dataset']}: baseline {m['baseline_acc']:.2f} % at "
        f"{_human(m['baseline_macs'])} MACs -> searched {m['searched_acc']:.2f} % at "
        f"{_human(m['macs'])} MACs ({m['macs_ratio']:.1%}); relaxation gap "
        f"{m['relaxation_gap']:+.2f} points; search {m['search_seconds']:.0f} s -> {args.out}"
    )
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
    from nas.strategies import list_strategies

    d = SearchConfig()
    p = sub.add_parser(
        "search",
        help="search widths under a MAC budget, extract and fine-tune the network",
        description="Gumbel-softmax width search under a MAC budget. Options may also come "
        "from --config file.yaml (keys as the long option names; args.yaml of a run works).",
    )
    p.add_argument("--config", default=None, help="YAML file of option defaults")
    p.add_argument("--space", default="resnet20", help="search space (default resnet20)")
    p.add_argument("--out", default="runs/search", help="output directory (default runs/search)")
    p.add_argument(
        "--target-macs",
        default=d.target_macs,
        help="MAC budget: a ratio of the full network (0.5) or absolute (60M)",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="full-network state_dict to start from (else a baseline is trained)",
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
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
    p.set_defaults(handler=cmd_search)


def _apply_config_file(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Use ``--config FILE`` (YAML) as defaults of the search command; flags still win."""
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
        raise ConfigError(f"cannot read --config {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a mapping of option names to values")
    search = _subparser(parser, "search")
    dests = {a.dest for a in search._actions}
    aliases = {"out_dir": "out", "num_workers": "workers"}
    ignored = {"command", "data", "environment", "augment", "progress"}
    values = {}
    for key, value in data.items():
        dest = aliases.get(key, str(key).replace("-", "_"))
        if key in ignored:
            continue
        if dest not in dests:
            raise ConfigError(f"--config {path}: unknown option {key!r}")
        values[dest] = value
    if data.get("augment") is False:
        values["no_augment"] = True
    search.set_defaults(**values)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("no sub-commands")


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
    p.add_argument("--epochs", type=_positive_int, default=30)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.0)
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _apply_config_file(parser, argv)
    except NasError as exc:
        print(f"nas: error: {exc}", file=sys.stderr)
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
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " (continue with --resume)" if args.command == "search" else ""
        print(f"nas {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
