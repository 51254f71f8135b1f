"""End-to-end jobs behind the command line, callable from Python: ``nas train``, ``nas
extract`` and ``nas search``, and what the other jobs (:mod:`nas.ranking`, :mod:`nas.sweep`,
:mod:`nas.transfer`) share with them: data options, the baseline, ``args.yaml``, a finished
search run.

Each job checks all of its input (names, files, output directory) before it writes anything,
writes its resolved configuration (``args.yaml``) next to its results, removes what it wrote if
it then stops on bad input (:func:`nas.io.run_output`), and returns the numbers it also saves in
``metrics.json``.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

import search_spaces
from nas.data import DataBundle, load_data
from nas.errors import ConfigError, WeightsError, first_line
from nas.extract import channel_order, check_full_weights, extract, save_model
from nas.io import (
    load_state_dict_file,
    prepare_out_dir,
    read_csv,
    run_output,
    write_json,
    write_yaml,
)
from nas.plots import plot_search_curves, plot_widths
from nas.search import (
    SEARCH_CHECKPOINT,
    SEARCH_FORMAT,
    SearchConfig,
    finetune,
    search_widths,
    select_network,
    starting_network,
    summarize,
)
from nas.strategies import GateStrategy, create_strategy
from nas.supernet import Supernet
from nas.train import (
    TrainConfig,
    evaluate,
    loader_states,
    read_checkpoint,
    restore_loaders,
    seed_everything,
    train_model,
)
from search_spaces import SearchSpace, WidthSpec

if TYPE_CHECKING:  # nas.ranking needs predictors, which needs nas: imported where used
    pass


def environment() -> dict[str, str]:
    """Versions recorded with every run."""
    import torchvision

    from nas import __version__

    return {
        "channel_nas": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }


@dataclass
class DataOptions:
    """Which data a run uses and how it is served (see :func:`nas.data.load_data`)."""

    dataset: str = "digits"
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None
    val_fraction: float = 0.1
    batch_size: int = 128
    augment: bool = True
    num_workers: int = 0

    def load(self, seed: int) -> DataBundle:
        return load_data(
            self.dataset,
            data_root=self.data_root,
            download=self.download,
            val_fraction=self.val_fraction,
            batch_size=self.batch_size,
            seed=seed,
            augment=self.augment,
            image_size=self.image_size,
            num_workers=self.num_workers,
        )


def train_baseline(
    *,
    out_dir: str | Path,
    space: str = "resnet20",
    data: DataOptions | None = None,
    config: TrainConfig | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the full-width network of ``space`` on the data; save it to ``out_dir``.

    Writes ``arch.json``, ``model.pt``, ``model.ts``, ``summary.csv``, ``args.yaml`` and
    ``metrics.json``; returns the metrics.
    """
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    d, c = data or DataOptions(), config or TrainConfig()
    search_spaces.get_entry(space)  # unknown names fail before any data is read
    c.validate()
    bundle = d.load(c.seed)
    sp = search_spaces.create(
        space,
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        input_size=bundle.input_size,
    )
    with run_output(out, overwrite=overwrite):
        return _train_to_dir(out, space, sp, d, c, bundle, progress)


def _train_to_dir(
    out: Path,
    space: str,
    sp: SearchSpace,
    d: DataOptions,
    c: TrainConfig,
    bundle: DataBundle,
    progress: bool,
) -> dict[str, Any]:
    write_yaml(
        out / "args.yaml",
        {
            "command": "train",
            "space": space,
            **asdict(d),
            **asdict(c),
            "data": bundle.describe(),
            "environment": environment(),
        },
    )
    start = time.perf_counter()
    model = train_full(sp, bundle, None, c, out, resume=False, progress=progress)
    seconds = time.perf_counter() - start
    test = evaluate(model, bundle.test, device=c.device)
    summary = read_summary(out)
    metrics = {
        "space": space,
        "dataset": d.dataset,
        "test_acc": test.accuracy,
        "test_loss": test.loss,
        "val_acc": summary[-1]["val_acc"] if summary else None,
        "macs": sp.macs(),
        "flops": 2 * sp.macs(),
        "params": sp.params(),
        "epochs": c.epochs,
        "train_seconds": round(seconds, 2),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def extract_to_dir(
    weights: str | Path,
    arch: str | Path,
    out_dir: str | Path,
    *,
    order: str = "l1",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Slice the full network in ``weights`` down to the spec in ``arch``; save to ``out_dir``.

    ``order`` picks the kept channels of each unit (``l1``, ``bn`` or ``first``).
    """
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    spec = WidthSpec.load(arch)
    space = spec.get_space()
    state = load_state_dict_file(weights)
    check_full_weights(space, state, source=f"weights {weights}")
    full = space.build()
    full.load_state_dict(state)
    full.eval()
    pruned = extract(full, spec, channel_order(full, space, order))
    with run_output(out, overwrite=overwrite):
        return _save_extracted(pruned, spec, out, weights, arch, order)


def _save_extracted(
    pruned: torch.nn.Module,
    spec: WidthSpec,
    out: Path,
    weights: str | Path,
    arch: str | Path,
    order: str,
) -> dict[str, Any]:
    space = spec.get_space()
    save_model(pruned, spec, out)
    write_yaml(
        out / "args.yaml",
        {
            "command": "extract",
            "weights": str(weights),
            "arch": str(arch),
            "order": order,
            "environment": environment(),
        },
    )
    report = {
        "space": spec.space,
        "weights": str(weights),
        "arch": str(arch),
        "order": order,
        "macs": spec.macs(),
        "flops": 2 * spec.macs(),
        "macs_ratio": spec.macs_ratio(),
        "params": spec.params(),
        "params_ratio": spec.params() / space.params(),
    }
    write_json(out / "metrics.json", report)
    return report


# -- nas search ----------------------------------------------------------------------------------
@dataclass
class RunOptions(DataOptions):
    """Everything ``nas search`` needs besides the search knobs (data, baseline, files)."""

    out_dir: str = "runs/search"
    space: str = "resnet20"
    weights: str | None = None
    baseline_epochs: int = 30
    baseline_lr: float = 0.1
    resume: bool = False
    overwrite: bool = False
    progress: bool = True


def run_search(
    options: RunOptions, config: SearchConfig, *, warmup: Path | None = None
) -> dict[str, Any]:
    """``nas search``: baseline (trained or loaded), search, extraction, fine-tuning, files.

    Writes into ``options.out_dir``: ``arch.json``, ``model.pt``, ``model.ts``,
    ``metrics.json``, ``summary.csv`` (search epochs), ``args.yaml``, ``widths.png``,
    ``search_curves.png``, a per-epoch ``search_checkpoint.pt``, and the sub-directories
    ``baseline/`` and ``finetune/`` with their own summaries and checkpoints. With
    ``resume`` an interrupted run continues to the result it would have reached. ``warmup``:
    a shared warm-up of this baseline and data (:func:`nas.search.warm_up`, as ``nas sweep``
    makes one) to start the search from, with the same result.
    """
    o, c = options, config
    out = check_search_out(o)
    search_spaces.get_entry(o.space)
    c.validate()
    base_config = TrainConfig(
        epochs=o.baseline_epochs, lr=o.baseline_lr, seed=c.seed, device=c.device
    )
    base_config.validate()
    data, space = search_data(o, c.seed)
    c.target_for(space)  # impossible budgets fail before anything is written
    if c.select == "predictor":
        from nas.ranking import check_pool_band  # nas.ranking imports this module

        check_pool_band(space, c)
    initial = initial_weights(o.weights, space)
    resolved = resolved_args(o, c, data.describe())
    with run_output(out, overwrite=o.overwrite, resume=o.resume):
        return _search_to_dir(out, o, c, data, space, initial, resolved, base_config, warmup)


def _search_to_dir(
    out: Path,
    o: RunOptions,
    c: SearchConfig,
    data: DataBundle,
    space: SearchSpace,
    initial: dict[str, torch.Tensor] | None,
    resolved: dict[str, Any],
    base_config: TrainConfig,
    warmup: Path | None,
) -> dict[str, Any]:
    assert data.val is not None  # checked by run_search
    write_or_check_args(out, resolved, resume=o.resume)

    fresh = loader_states(data)
    baseline = train_full(
        space, data, initial, base_config, out / "baseline", resume=o.resume, progress=o.progress
    )
    # the search starts from fresh loaders, so it does not depend on whether the baseline was
    # trained here or loaded (--weights, a sweep's trials): both find the same network
    restore_loaders(data, fresh)
    baseline_acc = evaluate(baseline, data.test, device=c.device).accuracy
    outcome = search_widths(
        baseline,
        space,
        data.train,
        data.val,
        config=c,
        out_dir=out,
        resume=o.resume,
        warmup=warmup,
        progress=o.progress,
    )
    outcome, selection = select_network(
        outcome, baseline, data.train, data.val, c, progress=o.progress
    )
    if selection is not None:
        selection.predictor.save(out / "predictor.pt")
        write_json(out / "selection.json", selection.summary())  # rank settings, pool, top-k
    small = starting_network(outcome, c)
    finetune(
        small,
        baseline,
        data.train,
        data.val,
        config=c,
        out_dir=out / "finetune",
        resume=o.resume,
        progress=o.progress,
    )
    metrics = summarize(outcome, small, baseline_acc, data.test, c) | {
        "dataset": o.dataset,
        "baseline_macs": space.macs(),
        "finetune_epochs": c.finetune_epochs,
    }
    save_model(small, outcome.spec, out)
    write_json(out / "metrics.json", metrics)
    plot_widths(outcome.spec, out / "widths.png")
    plot_search_curves(outcome.records, metrics["target_macs_ratio"], out / "search_curves.png")
    return metrics


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


def check_search_out(o: RunOptions) -> Path:
    if o.resume and o.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    out = Path(o.out_dir)
    if o.resume:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output path exists and is not a directory: {out}")
        return out
    return prepare_out_dir(out, overwrite=o.overwrite)


def resolved_args(o: RunOptions, c: SearchConfig, data: dict[str, Any]) -> dict[str, Any]:
    run = {k: v for k, v in asdict(o).items() if k not in ("resume", "overwrite", "progress")}
    search = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c).items()}
    return {"command": "search", **run, **search, "data": data, "environment": environment()}


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
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(path, resolved)


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
    """A full state_dict for ``space``: exact (used as the baseline) or partial (stem/head of
    another task; the rest starts a baseline training run)."""
    if path is None:
        return None
    state = load_state_dict_file(path)
    expected = space.state_shapes
    unknown = [k for k in state if k not in expected]
    missing = [k for k in expected if k not in state]
    if unknown or len(missing) > 4:
        raise WeightsError(
            f"weights {path} are not a {space.name} network "
            f"(first unexpected/missing key: {(unknown or missing)[0]})"
        )
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
    if initial is not None and load_fitting(model, initial):
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


def read_summary(out: Path) -> list[dict[str, Any]]:
    """The rows of ``out/summary.csv`` (numbers as floats, empty cells as None)."""
    rows = read_csv(out / "summary.csv")
    return [{k: (float(v) if v else None) for k, v in row.items()} for row in rows]


def load_fitting(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Load every tensor whose shape fits; True if all of them did (nothing left to train)."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and tuple(v.shape) == own[k].shape}
    own.update(fitting)
    model.load_state_dict(own)
    return len(fitting) == len(own)


# -- shared by nas rank and nas sweep: a finished search run -------------------------------
def load_search_run(run: Path) -> tuple[RunOptions, SearchConfig]:
    """The options of a finished (or checkpointed) ``nas search`` run directory."""
    args_path, ckpt = run / "args.yaml", run / SEARCH_CHECKPOINT
    if not args_path.is_file() or not ckpt.is_file():
        raise ConfigError(
            f"{run} is not a search run directory (needs args.yaml and "
            f"{SEARCH_CHECKPOINT} written by nas search)"
        )
    stored = read_args(args_path)
    if stored.get("command") != "search":
        raise ConfigError(f"{args_path} was not written by nas search")
    run_fields = {f.name for f in fields(RunOptions)}
    search_fields = {f.name for f in fields(SearchConfig)}
    options = RunOptions(**{k: v for k, v in stored.items() if k in run_fields})
    values = {k: v for k, v in stored.items() if k in search_fields}
    values["width_ratios"] = tuple(values.get("width_ratios", SearchConfig().width_ratios))
    return options, SearchConfig(**values)


def load_supernet(
    run: Path, space: SearchSpace, config: SearchConfig
) -> tuple[Supernet, GateStrategy]:
    state = read_checkpoint(run / SEARCH_CHECKPOINT, SEARCH_FORMAT, "search")
    try:
        check_full_weights(space, state["supernet"], source=f"{run / SEARCH_CHECKPOINT}")
    except WeightsError as exc:
        raise WeightsError(f"{exc} (the run's args.yaml and checkpoint disagree)") from None
    model = space.build()
    supernet = Supernet(model, space)
    model.load_state_dict(state["supernet"])
    strategy = create_strategy(config.strategy, space, config.choices(space))
    strategy.load_state_dict(state["strategy"])
    strategy.attach(supernet)
    return supernet.to(config.device), strategy.to(config.device)
