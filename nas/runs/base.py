"""What every run shares: its options (data, baseline, files), ``args.yaml``, its threads and
recorded environment, the full network trained (or loaded) as its baseline.

Each job checks all of its input (names, files, output directory) before it writes anything,
writes its resolved configuration (``args.yaml``) next to its results, removes what it wrote if
it then stops on bad input (:func:`nas.rundir.run_output`), and returns the numbers it also saves in
``metrics.json``.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml

import search_spaces
from nas.data import DataBundle, DataOptions
from nas.engine import (
    ThreadOptions,
    TrainConfig,
    distributed,
    seed_everything,
    torch_threads,
    train_model,
)
from nas.errors import ConfigError, DataError, first_line
from nas.extraction import check_initial_weights, load_fitting, save_model
from nas.io import load_state_dict_file, write_yaml
from nas.options import LOCAL, MAX_EPOCHS, NOT_RECORDED, Options, option, record, tagged
from nas.rundir import prepare_out_dir
from search_spaces import SearchSpace

__all__ = [
    "RunOptions",
    "check_search_out",
    "environment",
    "initial_weights",
    "read_args",
    "resolve_threads",
    "resolved_args",
    "search_data",
    "torch_threads",
    "train_full",
    "write_or_check_args",
]


def environment() -> dict[str, str]:
    """Versions recorded with every run (and, under torchrun, the number of processes and
    whether they synchronised BatchNorm)."""
    from importlib.metadata import PackageNotFoundError, version

    import torchvision

    try:
        own = version("channel-nas")
    except PackageNotFoundError:  # run from a source tree that is not installed
        own = "unknown"
    found = {
        "channel_nas": own,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }
    if distributed.active():  # a torchrun run: how many processes shared it, and how
        found["processes"] = str(distributed.world_size())
        found["sync_bn"] = str(distributed.syncs_bn()).lower()
    return found


def resolve_threads(
    threads: int | None, recorded_in: Path | None = None, *, workers: int = 1
) -> int:
    """The torch threads of a run: ``threads`` if given, else the count recorded in
    ``recorded_in/args.yaml`` (a run being continued, or the run a command reads), else
    torch's default count shared among ``workers`` processes."""
    if threads is not None:
        return threads
    if recorded_in is not None and (recorded_in / "args.yaml").is_file():
        stored = read_args(recorded_in / "args.yaml").get("threads")
        if isinstance(stored, int) and not isinstance(stored, bool) and stored >= 1:
            return stored
    return ThreadOptions().thread_count(workers)


@dataclass
class RunOptions(ThreadOptions, DataOptions):
    """Everything ``nas search`` needs besides the search knobs (data, baseline, files)."""

    group: ClassVar[str] = "run"

    out_dir: str = option("runs/search", "output directory", flag="--out", tags=(LOCAL,))
    space: str = option(
        "resnet20", "search space (see nas spaces)", choices="search_spaces:SPACE_NAMES"
    )
    weights: str | None = option(
        None, "full-network state_dict to start from (else a baseline is trained)", tags=(LOCAL,)
    )
    baseline_epochs: int = option(30, "training epochs of the baseline", ge=1, le=MAX_EPOCHS)
    baseline_lr: float = option(0.1, "learning rate of the baseline", gt=0)
    resume: bool = option(False, "continue an interrupted run in --out", tags=(LOCAL, NOT_RECORDED))
    overwrite: bool = option(
        False,
        "replace an earlier nas run in a non-empty --out directory",
        tags=(LOCAL, NOT_RECORDED),
    )
    progress: bool = option(True, "no progress bars", flag="--quiet", tags=(LOCAL, NOT_RECORDED))

    def inputs(self) -> list[str]:
        """What the run reads (``--overwrite`` must not delete it)."""
        return self.input_paths() + ([self.weights] if self.weights else [])


def search_data(o: RunOptions, seed: int) -> tuple[DataBundle, SearchSpace]:
    """The data of a search (it needs a validation split for the architecture step) and the
    space of ``o.space`` built for it (channels, classes, input size)."""
    data = o.load(seed)
    if data.val is None:
        raise ConfigError("a search needs a validation split: --val-fraction must be > 0")
    space = search_spaces.create(
        o.space,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    return data, space


def check_search_out(
    o: RunOptions, *, command: str = "search", extra: tuple[str, ...] = ()
) -> Path:
    """The checks of ``nas search``'s (or ``command``'s) ``--out``
    (:func:`nas.rundir.prepare_out_dir`); ``extra``: more files the run reads."""
    return prepare_out_dir(
        o.out_dir,
        overwrite=o.overwrite,
        resume=o.resume,
        command=command,
        inputs=[*o.inputs(), *extra],
    )


def resolved_args(
    o: RunOptions, c: Options, data: dict[str, Any], *, command: str = "search"
) -> dict[str, Any]:
    """What ``args.yaml`` holds: every option of the run (but how it is run: resume,
    overwrite, progress), the data it read and the versions."""
    run = {k: v for k, v in record(o).items() if k not in tagged(RunOptions, NOT_RECORDED)}
    return {"command": command, **run, **record(c), "data": data, "environment": environment()}


def write_or_check_args(
    out: Path, resolved: dict[str, Any], *, resume: bool, volatile: tuple[str, ...] = ()
) -> None:
    """Write ``args.yaml``; when resuming, first refuse options that differ from the stored
    ones. ``volatile`` options may change between runs (e.g. a sweep's number of trials): the
    file is then rewritten with their new values."""
    path = out / "args.yaml"
    if resume and path.is_file():
        stored = read_args(path)
        ignore = {"environment", "device", "out_dir", *volatile}
        diff = sorted(k for k in resolved if k not in ignore and stored.get(k) != resolved[k])
        if diff:
            raise ConfigError(
                f"cannot resume {out}: options differ from the stored args.yaml "
                f"({', '.join(diff[:4])})"
            )
        if not any(stored.get(k) != resolved.get(k) for k in volatile):
            return
    write_yaml(path, resolved)  # creates the directory; on rank 0 only of several processes


def check_data_fits(space: SearchSpace, data: DataBundle) -> None:
    """Refuse (one line) data a finished run's network cannot read."""
    h, w = space.input_size
    dh, dw = data.input_size
    if (space.num_classes, space.in_channels, h, w) != (data.num_classes, data.in_channels, dh, dw):
        raise DataError(
            f"the run's network reads {space.in_channels}x{h}x{w} images of {space.num_classes} "
            f"classes; the data have {data.in_channels}x{dh}x{dw} images of {data.num_classes} "
            "classes (pass its --dataset)"
        )


def static_run_dir(run_dir: str | Path, conditional: str) -> Path:
    """``run_dir`` if it holds a finished run's static network (``arch.json`` + ``model.pt``);
    one line otherwise: ``DIR conditional`` for a per-input (conditional) network (what the
    command cannot take from it, in words), or no nas run there."""
    d = Path(run_dir)
    if (d / "conditional.json").is_file() or (
        (d / "conditional" / "conditional.json").is_file() and not (d / "model.pt").is_file()
    ):
        raise ConfigError(f"{d} {conditional}")
    if not (d / "arch.json").is_file() or not (d / "model.pt").is_file():
        raise ConfigError(f"{d} holds no nas run (no arch.json and model.pt)")
    return d


def read_args(path: Path) -> dict[str, Any]:
    """A run's ``args.yaml``; a malformed one is a :class:`ConfigError` of one line."""
    try:
        stored = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {first_line(exc)}") from None
    if not isinstance(stored, dict) or "command" not in stored:
        raise ConfigError(f"{path} was not written by nas (no 'command' in it)")
    return stored


def initial_weights(path: str | None, space: SearchSpace) -> dict[str, torch.Tensor] | None:
    """A full state_dict for ``space``: exact (used as the baseline) or of another task (the
    input layer and classifier start afresh; a baseline training run completes it). Anything
    else is refused (:func:`~nas.extraction.check_initial_weights`)."""
    if path is None:
        return None
    state = load_state_dict_file(path)
    check_initial_weights(space, state, source=f"weights {path}")
    return state


def train_full(
    space: SearchSpace,
    data: DataBundle,
    initial: dict[str, torch.Tensor] | None,
    config: TrainConfig,
    out: Path,
    *,
    resume: bool,
    progress: bool,
) -> torch.nn.Module:
    """The trained full network: ``initial`` if it fits exactly, else trained here (starting
    from whatever part of ``initial`` fits), checkpointed; saved in ``out`` either way."""
    seed_everything(config.seed)
    model = space.build()
    if initial is not None and not load_fitting(model, initial):
        save_model(model, space.spec(), out)
        return model.to(config.device).eval()
    train_model(
        model,
        data.train,
        config=config,
        val_loader=data.val,
        out_dir=out,
        checkpoint=True,
        resume=resume,
        progress=progress,
        desc=f"train {space.name}",
    )
    save_model(model, space.spec(), out)
    return model.eval()
