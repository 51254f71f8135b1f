"""Options declared once: every config field carries its flag, help, type and allowed range.

A config is a dataclass deriving from :class:`Options` whose fields are made with
:func:`option`::

    @dataclass
    class TrainConfig(Options):
        epochs: int = option(30, "training epochs", ge=1)
        lr: float = option(0.1, "SGD learning rate", gt=0)

From that one declaration come

* :meth:`Options.validate`: the type of every field (from its annotation) and its range, then the
  class's own cross-field rules (:meth:`Options.check`), each failure one line naming the flag
  (``--lr must be > 0, got -1``); NaN, infinities and integers beyond 64 bits are refused
  everywhere;
* :func:`convert`: text from the command line and values from ``--config`` YAML files go through
  the same conversion, so a value gives the same one-line error from either;
* :func:`record`: the mapping written to ``args.yaml`` (which ``--config`` reads back);
* the command-line parsers (``nas.cli.parser`` walks :func:`option_fields`);
* what the option shapes (``tags``): a run's records name options by their declaration
  (:func:`tagged`), never by a string of their own: :data:`AFTER_SEARCH` options do not
  shape a search (its checkpoint ignores them), :data:`AFTER_WARMUP` ones do not shape its
  warm-up (searches differing only in them share one), ``target_tag(cost)`` marks the
  option holding a budget in that cost (a sweep sets it per trial), :data:`LOCAL` ones may
  differ between the processes of one run (a sweep's fingerprint leaves them out),
  :data:`NOT_RECORDED` ones say how a run is run (not in ``args.yaml``) and :data:`VOLATILE`
  ones may change when a run is run again.

This module imports neither torch nor anything heavy: the command line's help is fast.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from nas.errors import ConfigError

__all__ = [
    "AFTER_SEARCH",
    "AFTER_WARMUP",
    "LOCAL",
    "MAX_BATCH_SIZE",
    "MAX_EPOCHS",
    "NOT_RECORDED",
    "RECORD_KEYS",
    "VOLATILE",
    "Option",
    "OptionField",
    "Options",
    "convert",
    "flag_of",
    "from_mapping",
    "option",
    "option_fields",
    "record",
    "tagged",
    "target_tag",
    "tunable",
]

METADATA_KEY = "nas.option"
INT64 = 2**63
MAX_EPOCHS = 100_000  # beyond: a typo, not a schedule (it would run for years)
MAX_BATCH_SIZE = 2**20  # beyond: a typo (no device holds such a batch)
# keys of args.yaml that record a run rather than set an option (ignored by --config)
RECORD_KEYS = frozenset({"command", "data", "environment"})

Choices = Sequence[str] | Callable[[], Sequence[str]] | str

# what an option shapes (tags of :func:`option`; see the module docstring)
AFTER_SEARCH = "after-search"  # the fine-tuning, the choice of widths, the device
AFTER_WARMUP = "after-warmup"  # the search's target, temperatures and architecture step
LOCAL = "local"  # may differ between the processes (and machines) of one run: paths, devices
NOT_RECORDED = "not-recorded"  # how a run is run (resume, overwrite, progress): not in args.yaml
VOLATILE = "volatile"  # may change when the same run is run again (a sweep's trials, workers)


def target_tag(cost: str) -> str:
    """The tag of the option holding a budget in ``cost``'s unit (``macs``, ``latency``)."""
    return f"target:{cost}"


@dataclass(frozen=True)
class Option:
    """What a config field declares besides its name, type and default (see :func:`option`)."""

    help: str
    flag: str | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: Choices | None = None
    parse: Callable[[Any], Any] | None = None
    what: str | None = None
    positional: bool = False
    nargs: str | None = None
    metavar: str | None = None
    tags: frozenset[str] = frozenset()
    tune: tuple[float, float] | None = None


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Choices | None = None,
    parse: Callable[[Any], Any] | None = None,
    what: str | None = None,
    positional: bool = False,
    nargs: str | None = None,
    metavar: str | None = None,
    tags: Iterable[str] = (),
    tune: tuple[float, float] | None = None,
) -> Any:
    """A dataclass field with its option metadata.

    ``flag``: the command-line flag (default ``--field-name``; a boolean whose default is True is
    switched off by ``--no-field-name`` unless another flag is named). ``ge``/``gt``/``le``/``lt``:
    the allowed range (of each element for lists). ``choices``: allowed names (a sequence, a
    callable returning one, or ``"module:attribute"`` naming a :class:`~nas.registry.Registry`,
    resolved only when needed). ``parse``: a converter for values the type alone does not
    describe (raises ``ValueError``); ``what`` says what it accepts, for error messages.
    ``tags``: what the option shapes (:data:`AFTER_SEARCH`, :data:`AFTER_WARMUP`,
    :func:`target_tag`), read back by :func:`tagged`. ``tune``: the log-uniform range a sweep
    may draw the option from (``nas sweep --tune``; :func:`tunable`).
    """
    meta = Option(
        help=help,
        flag=flag,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        choices=choices,
        parse=parse,
        what=what,
        positional=positional,
        nargs=nargs,
        metavar=metavar,
        tags=frozenset(tags),
        tune=tune,
    )
    return dataclasses.field(default=default, metadata={METADATA_KEY: meta})


@dataclass(frozen=True)
class OptionField:
    """One option of a config class: its field name, resolved type, default and metadata."""

    name: str
    type: Any
    default: Any
    option: Option

    @property
    def flag(self) -> str:
        return flag_of(self)

    @property
    def is_bool(self) -> bool:
        return self.type is bool

    def choices(self) -> list[str] | None:
        return _resolve_choices(self.option.choices)


def flag_of(f: OptionField) -> str:
    """The command-line spelling of an option (its positional name for positionals)."""
    if f.option.flag is not None:
        return f.option.flag
    if f.option.positional:
        return f.name.upper()
    dashed = f.name.replace("_", "-")
    if f.is_bool and f.default is True:
        return f"--no-{dashed}"
    return f"--{dashed}"


_FIELDS: dict[type, tuple[OptionField, ...]] = {}


def option_fields(cls: type) -> tuple[OptionField, ...]:
    """The options of a config class, in field order (inherited fields first)."""
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(METADATA_KEY)
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with nas.options.option()")
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out.append(OptionField(f.name, hints[f.name], default, meta))
    _FIELDS[cls] = tuple(out)
    return _FIELDS[cls]


def tunable(cls: type) -> dict[str, tuple[float, float]]:
    """The options of ``cls`` a sweep may draw, with their log-uniform ranges."""
    return {f.name: f.option.tune for f in option_fields(cls) if f.option.tune is not None}


def tagged(cls: type, tag: str) -> frozenset[str]:
    """The names of ``cls``'s options declared with ``tag``."""
    return frozenset(f.name for f in option_fields(cls) if tag in f.option.tags)


T = TypeVar("T", bound="Options")


class Options:
    """Base of every config dataclass: validation from the fields' declarations."""

    group: ClassVar[str] = "options"  # the title of the class's options in --help

    def validate(self: T) -> T:
        """Convert and check every field (one-line :class:`ConfigError` naming the flag), then
        :meth:`check`. Values are normalised in place (a list becomes a tuple, ``"5"`` from a
        file becomes 5). Returns the config."""
        for f in option_fields(type(self)):
            object.__setattr__(self, f.name, convert(f, getattr(self, f.name)))
        self.check()
        return self

    def check(self) -> None:
        """Rules across fields (a subclass's own); the fields themselves are valid here."""


# -- conversion and checks ---------------------------------------------------------------------
def convert(f: OptionField, value: Any, *, text: bool = False) -> Any:
    """``value`` as the field's type, in its range and choices; any problem is a
    :class:`ConfigError` naming the flag. ``text``: the value is command-line text (``"0.1"``
    for a number, ``"0.5,1"`` for a list); otherwise (Python, YAML) it must have its type."""
    flag = flag_of(f)
    if f.option.parse is not None:
        if value is None and _optional(f.type):
            return None
        try:
            out = f.option.parse(value)
        except (ValueError, TypeError) as exc:
            what = f.option.what or str(exc)
            raise ConfigError(f"{flag} must be {what}, got {_show(value)}") from None
    else:
        out = _typed(flag, f.type, value, text)
    if out is not None:
        _check_range(flag, f.option, out)
        _check_choices(flag, f, out)
    return out


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp) and _is_union(tp)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _typed(flag: str, tp: Any, value: Any, text: bool) -> Any:
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        words = text and isinstance(value, str) and value.lower() in ("none", "null")
        if (value is None or words) and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) != 1:
            raise TypeError(f"option type {tp} is not supported")
        return _typed(flag, args[0], value, text)
    if value is None:
        raise ConfigError(f"{flag} needs a value")
    origin = typing.get_origin(tp)
    if origin is tuple:
        return _tuple(flag, typing.get_args(tp), value, text)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{flag} must be true or false, got {_show(value)}")
    if tp is int:
        return _int(flag, value, text)
    if tp is float:
        return _float(flag, value, text)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{flag} must be a string, got {_show(value)}")
    raise TypeError(f"option type {tp} is not supported")


def _int(flag: str, value: Any, text: bool) -> int:
    if isinstance(value, str) and text:
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{flag} must be an integer, got {_show(value)}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{flag} must be an integer, got {_show(value)}")
    if not -INT64 <= int(value) < INT64:
        raise ConfigError(f"{flag} must be an integer in [-2^63, 2^63), got {value}")
    return int(value)


def _float(flag: str, value: Any, text: bool) -> float:
    if isinstance(value, str) and text:
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{flag} must be a number, got {_show(value)}") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{flag} must be a number, got {_show(value)}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{flag} must be a finite number, got {value}")
    return float(value)


def _tuple(flag: str, args: tuple[Any, ...], value: Any, text: bool) -> tuple[Any, ...]:
    variadic = len(args) == 2 and args[1] is Ellipsis
    item = args[0]
    if isinstance(value, str) and text:
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ConfigError(f"{flag} must be {_tuple_what(args)}, got {_show(value)}")
    if not variadic and len(parts) != len(args):
        raise ConfigError(f"{flag} must be {_tuple_what(args)}, got {_show(value)}")
    if variadic and item is not str and not parts:
        raise ConfigError(f"{flag} must be {_tuple_what(args)}, got {_show(value)}")
    types_ = [item] * len(parts) if variadic else list(args)
    try:
        return tuple(_typed(flag, t, p, text) for t, p in zip(types_, parts, strict=True))
    except ConfigError:
        raise ConfigError(f"{flag} must be {_tuple_what(args)}, got {_show(value)}") from None


def _tuple_what(args: tuple[Any, ...]) -> str:
    if len(args) == 2 and args[1] is Ellipsis:
        return "a list of names" if args[0] is str else "a non-empty list of numbers"
    return f"{len(args)} comma-separated numbers"


def _num(v: float) -> str:
    """A bound or value as written: integers in full (100000, not 1e+05)."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e16 else f"{v:g}"


def _range_text(o: Option) -> str | None:
    """The allowed range as text: ``in [1, 10]``, ``>= 0``, ``< 1``..."""
    low = f"[{_num(o.ge)}" if o.ge is not None else f"({_num(o.gt)}" if o.gt is not None else ""
    high = f"{_num(o.le)}]" if o.le is not None else f"{_num(o.lt)})" if o.lt is not None else ""
    if low and high:
        return f"in {low}, {high}"
    if low:
        return (">= " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("<= " if high[-1] == "]" else "< ") + high[:-1]
    return None


def _in_range(o: Option, v: float) -> bool:
    return (
        (o.ge is None or v >= o.ge)
        and (o.gt is None or v > o.gt)
        and (o.le is None or v <= o.le)
        and (o.lt is None or v < o.lt)
    )


def _check_range(flag: str, o: Option, value: Any) -> None:
    rule = _range_text(o)
    if rule is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    numbers_ = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not all(_in_range(o, float(v)) for v in numbers_):
        if isinstance(value, tuple):
            shown = ", ".join(f"{_num(v)}" for v in numbers_)
            raise ConfigError(f"{flag} must hold values {rule}, got {shown}")
        raise ConfigError(f"{flag} must be {rule}, got {_num(value)}")


def _check_choices(flag: str, f: OptionField, value: Any) -> None:
    allowed = f.choices()
    if allowed is None:
        return
    source = _choice_source(f.option.choices)
    for v in value if isinstance(value, tuple) else (value,):
        if hasattr(source, "accepts") and source.accepts(v):
            continue  # a name outside the list (search_spaces: "torchvision:X")
        if v not in allowed:
            raise ConfigError(f"unknown {flag} {v!r}; choose one of: {', '.join(allowed)}")


def _choice_source(choices: Choices | None) -> Any:
    if isinstance(choices, str):
        module, _, attr = choices.partition(":")
        return getattr(importlib.import_module(module), attr)
    return None


def _resolve_choices(choices: Choices | None) -> list[str] | None:
    if choices is None:
        return None
    if isinstance(choices, str):  # "module:attribute" of a Registry (imported when needed)
        return list(_choice_source(choices).names())
    if callable(choices):
        return list(choices())
    return list(choices)


def _show(value: Any) -> str:
    return repr(value)


# -- files --------------------------------------------------------------------------------------
def record(*configs: Options) -> dict[str, Any]:
    """The options of ``configs`` as plain YAML/JSON values (tuples as lists), in field order:
    what ``args.yaml`` holds and ``--config`` reads back."""
    out: dict[str, Any] = {}
    for config in configs:
        for f in option_fields(type(config)):
            value = getattr(config, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def from_mapping(
    classes: Sequence[type[Options]],
    data: Mapping[Any, Any],
    source: str,
    *,
    foreign: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The option values a ``--config`` mapping sets for ``classes``, converted and checked.

    Keys are field names (``tau_min``; ``tau-min`` is accepted too). :data:`RECORD_KEYS` and the
    ``foreign`` keys (options of the command that wrote the file, when it is another one) are
    skipped; any other unknown key is refused in one line naming ``source``.
    """
    fields_ = {f.name: f for cls in classes for f in option_fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in RECORD_KEYS or (name in foreign and name not in fields_):
            continue
        f = fields_.get(name)
        if f is None:
            raise ConfigError(f"{source}: unknown option {key!r}")
        values[name] = convert(f, value)
    return values


def iter_fields(classes: Sequence[type[Options]]) -> Iterator[tuple[type[Options], OptionField]]:
    """Every option of ``classes``; a name declared by two of them is a programming error."""
    seen: dict[str, type] = {}
    for cls in classes:
        for f in option_fields(cls):
            if f.name in seen and not issubclass(cls, seen[f.name]):
                raise TypeError(f"option {f.name} is declared by {seen[f.name]} and {cls}")
            seen.setdefault(f.name, cls)
            yield cls, f


def build(cls: type[T], values: Mapping[str, Any]) -> T:
    """An instance of ``cls`` from the values it has fields for (defaults for the rest),
    validated."""
    names = {f.name for f in option_fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names}).validate()
