"""``nas profile``: the options parsed into one call of :func:`nas.cost.profile_network` (MACs,
parameters and units of a space, or of a width spec; with ``--latency`` or ``--table`` its
latency), and its result printed.

:class:`TaskOptions` (a space sized without data: input size and classes) is shared with ``nas
latency-table``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import search_spaces
from nas.cost.profile import profile_network
from nas.cost.runtime import BACKENDS
from nas.engine.config import ThreadOptions
from nas.errors import ConfigError
from nas.jobs.base import Command
from nas.jobs.format import human
from nas.options import Options, option
from search_spaces import SearchSpace, WidthSpec

__all__ = ["COMMAND", "ProfileOptions", "TaskOptions"]


def parse_input_size(value: Any) -> tuple[int, ...]:
    """``3x32x32`` -> (3, 32, 32); ``32x32`` and ``32`` -> (3, 32, 32) (three channels); a
    sequence of integers (as parsed before) is taken as it is."""
    if isinstance(value, (list, tuple)):
        if len(value) != 3 or not all(isinstance(v, int) and v >= 1 for v in value):
            raise ValueError(value)
        return tuple(value)
    text = str(value)
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) not in (2, 3) or min(parts) < 1:
        raise ValueError(text)
    return tuple(parts) if len(parts) == 3 else (3, *parts)


@dataclass
class TaskOptions(Options):
    """The task a space is sized for without data: input size and classes."""

    group: ClassVar[str] = "task"

    input_size: tuple[int, ...] | None = option(
        None,
        "CxHxW (or HxW), e.g. 3x32x32; default: the space's",
        parse=parse_input_size,
        what="CxHxW, HxW or S (positive integers)",
    )
    num_classes: int | None = option(None, "classes of the head; default: the space's", ge=1)

    def task_space(self, name: str) -> SearchSpace:
        """The space ``name`` at this input size and head (the space's defaults otherwise)."""
        entry = search_spaces.get_entry(name)
        if self.input_size is None and entry.default_input_size is None:
            raise ConfigError(f"space {entry.name} has no default input size: give --input-size")
        channels, h, w = self.input_size or (3, *(entry.default_input_size or (0, 0)))
        return search_spaces.create(
            name, num_classes=self.num_classes, in_channels=channels, input_size=(h, w)
        )


@dataclass
class RuntimeOptions(Options):
    """The runtime latencies are measured on (``nas latency-table``, ``nas profile``)."""

    group: ClassVar[str] = "latency"

    backend: str | None = option(
        None,
        "the runtime that runs the networks: torch (eager, the default) or onnxruntime (ONNX "
        "Runtime's CPU provider, as model.onnx deploys; needs the onnx extra); with --table, "
        "the table's",
        choices=BACKENDS,
    )


@dataclass
class ProfileOptions(ThreadOptions, TaskOptions, RuntimeOptions):
    """What ``nas profile`` describes."""

    group: ClassVar[str] = "profile"

    space: str | None = option(
        None, "search space name (see nas spaces)", positional=True, nargs="?"
    )
    arch: str | None = option(None, "a width spec (arch.json) to profile")
    json: bool = option(False, 'print {"space", "macs", "params", "units": [...]} as JSON')
    latency: bool = option(
        False, "also measure the latency here (and predict it with --table) beside the MACs"
    )
    table: str | None = option(
        None,
        "a latency table (nas latency-table) of this space and machine: the latency predicted, "
        "and measured at its batch and threads",
        metavar="TABLE",
    )
    batch: int | None = option(
        None, "--latency without --table: the batch to measure at (default 1)", ge=1, le=4096
    )


def _cli(options: ProfileOptions) -> int:
    if options.space is None and options.arch is None:
        raise ConfigError("name a SPACE or pass --arch arch.json")
    if options.arch is not None:
        spec = WidthSpec.load(options.arch)
        if options.space is not None and options.space != spec.space:
            raise ConfigError(
                f"{options.arch} is a spec for space {spec.space}, not {options.space}"
            )
        if options.input_size is not None or options.num_classes is not None:
            raise ConfigError("--input-size/--num-classes come from the spec when --arch is given")
        space = spec.get_space()
        widths = dict(spec.widths)
    else:
        assert options.space is not None
        space = options.task_space(options.space)
        widths = space.full_widths()
    report = profile_network(
        space,
        widths,
        latency=options.latency,
        table=options.table,
        batch=options.batch,
        threads=options.threads,
        backend=options.backend,
    )
    if options.json:
        print(json.dumps(report, indent=2))
    else:
        _print_profile(report, show_widths=options.arch is not None)
    return 0


def _print_profile(r: dict[str, Any], *, show_widths: bool) -> None:
    h, w = r["input_size"]
    print(f"space    {r['space']}  ({r['in_channels']}x{h}x{w} input, {r['num_classes']} classes)")
    print(f"MACs     {human(r['macs'])}  ({r['macs']:,}, {r['macs_ratio']:.1%} of full width)")
    print(f"params   {human(r['params'])}  ({r['params']:,})")
    if "latency_ms" in r:
        predicted = (
            f"; predicted {r['predicted_latency_ms']:.3f} ms "
            f"({r['predicted_latency_ratio']:.1%}, error {r['latency_prediction_error']:+.1%})"
            if "predicted_latency_ms" in r
            else ""
        )
        print(
            f"latency  {r['latency_ms']:.3f} ms at batch {r['latency_batch']} "
            f"({r['latency_ratio']:.1%} of full width, {r['full_latency_ms']:.3f} ms){predicted}"
        )
    units = r["units"]
    print(f"units    {len(units)}" + ("  (width / max)" if show_widths else "  (max width)"))
    name_w = max(len(u["name"]) for u in units)
    for u in units:
        width = f"{u['width']:>5} / " if show_widths else ""
        step = f"  in groups of {u['granularity']}" if u.get("granularity", 1) > 1 else ""
        print(f"  {u['name']:<{name_w}}  {u['kind']:<5}  {width}{u['max_width']:>5}{step}")
    frozen = [g for g in r.get("frozen", []) if g["reason"] != "network output"]
    if frozen:
        print(f"frozen   {len(frozen)} groups kept at full width (no rule follows them)")
        for g in frozen:
            writers = ", ".join(g["writers"][:3]) + (" ..." if len(g["writers"]) > 3 else "")
            print(f"  {writers}  {g['channels']} channels: {g['reason']}")


COMMAND = Command(
    options=(ProfileOptions,),
    run=_cli,
    description="MACs, parameters and units of a space (full width) or of a width spec; with "
    "--latency its measured latency, and with --table the latency a table predicts.",
)
