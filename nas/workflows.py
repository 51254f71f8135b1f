"""End-to-end jobs behind the command line, callable from Python: train a baseline, extract.

Each job checks all of its input (names, files, output directory) before it writes anything,
writes its resolved configuration (``args.yaml``) next to its results, and returns the numbers it
also saves in ``metrics.json``.
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch
import yaml
from optuna.trial import TrialState

import search_spaces
from nas.data import DataBundle, load_data
from nas.errors import ConfigError, WeightsError
from nas.extract import channel_order, check_full_weights, extract, load_model, save_model
from nas.io import load_state_dict_file, prepare_out_dir, write_json, write_yaml
from nas.plots import plot_pareto, plot_rank_scatter, plot_search_curves, plot_widths
from nas.search import (
    CALIBRATION_BATCHES,
    SEARCH_CHECKPOINT,
    SEARCH_FORMAT,
    SearchConfig,
    finetune,
    search_widths,
    select_network,
    starting_network,
    summarize,
    take_batches,
    warm_up,
)
from nas.strategies import GateStrategy, create_strategy
from nas.supernet import Supernet
from nas.sweep import (
    OBJECTIVES,
    SweepConfig,
    config_record,
    counted,
    cover_budgets,
    hypervolume,
    next_trial,
    open_study,
    pareto_rows,
    progress_bar,
    space_of,
    sweep_lock,
    timed,
    trial_rows,
    uniform_point,
    write_csv,
)
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
    from nas.ranking import RankConfig


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
    out.mkdir(parents=True, exist_ok=True)
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
    model = _train_full(sp, bundle, None, c, out, resume=False, progress=progress)
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
    out = _check_search_out(o)
    search_spaces.get_entry(o.space)
    c.validate()
    base_config = TrainConfig(
        epochs=o.baseline_epochs, lr=o.baseline_lr, seed=c.seed, device=c.device
    )
    base_config.validate()
    data = load_data(
        o.dataset,
        data_root=o.data_root,
        download=o.download,
        val_fraction=o.val_fraction,
        batch_size=o.batch_size,
        seed=c.seed,
        augment=o.augment,
        image_size=o.image_size,
        num_workers=o.num_workers,
    )
    if data.val is None:
        raise ConfigError("a search needs a validation split: --val-fraction must be > 0")
    space = search_spaces.create(
        o.space,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    c.target_for(space)  # impossible budgets fail before anything is written
    initial = _initial_weights(o.weights, space)
    resolved = _resolved_args(o, c, data.describe())
    _write_or_check_args(out, resolved, resume=o.resume)

    fresh = loader_states(data)
    baseline = _train_full(
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
        write_json(
            out / "selection.json",
            {"candidates": selection.candidates, "seconds": round(selection.seconds, 2)},
        )
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


def _check_search_out(o: RunOptions) -> Path:
    if o.resume and o.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    out = Path(o.out_dir)
    if o.resume:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"output path exists and is not a directory: {out}")
        return out
    return prepare_out_dir(out, overwrite=o.overwrite)


def _resolved_args(o: RunOptions, c: SearchConfig, data: dict[str, Any]) -> dict[str, Any]:
    run = {k: v for k, v in asdict(o).items() if k not in ("resume", "overwrite", "progress")}
    search = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c).items()}
    return {"command": "search", **run, **search, "data": data, "environment": environment()}


def _write_or_check_args(
    out: Path, resolved: dict[str, Any], *, resume: bool, volatile: tuple[str, ...] = ()
) -> None:
    """Write ``args.yaml``; when resuming, first refuse options that differ from the stored
    ones. ``volatile`` options may change between runs (e.g. a sweep's number of trials): the
    file is then rewritten with their new values."""
    path = out / "args.yaml"
    if resume and path.is_file():
        stored = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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


def _initial_weights(path: str | None, space: SearchSpace) -> dict[str, torch.Tensor] | None:
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


def _train_full(
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
    if initial is not None and _load_fitting(model, initial):
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
    import csv

    with open(out / "summary.csv", encoding="utf-8", newline="") as f:
        return [{k: (float(v) if v else None) for k, v in row.items()} for row in csv.DictReader(f)]


def _load_fitting(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """Load every tensor whose shape fits; True if all of them did (nothing left to train)."""
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and tuple(v.shape) == own[k].shape}
    own.update(fitting)
    model.load_state_dict(own)
    return len(fitting) == len(own)


# -- nas rank ------------------------------------------------------------------------------------
def run_rank(
    run_dir: str | Path,
    config: RankConfig,
    *,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """``nas rank``: fit the GCN predictor on a finished search's supernet, select the best of
    its top-k, and (with ``holdout > 0``) measure the ranking against stand-alone training.

    Writes into ``out_dir`` (default ``RUN/rank``): ``predictor.pt``, ``selection.json``,
    ``arch.json`` (the selected spec), ``rank_metrics.json`` and ``rank_scatter.png``.
    """
    from nas.ranking import ranking_evidence, select_with_predictor

    config.validate()
    run = Path(run_dir)
    options, search_config = _load_search_run(run)
    out = prepare_out_dir(Path(out_dir) if out_dir else run / "rank", overwrite=overwrite)
    data = options.load(search_config.seed)
    space = search_spaces.create(
        options.space,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    if data.val is None:
        raise ConfigError("ranking needs a validation split: the run has --val-fraction 0")
    supernet, strategy = _load_supernet(run, space, search_config)
    teacher = load_model(run / "baseline") if (run / "baseline" / "arch.json").is_file() else None
    calibration = take_batches(data.train, CALIBRATION_BATCHES)
    target = search_config.target_for(space)
    finetune = search_config.finetune_config()
    selection = select_with_predictor(
        supernet,
        strategy.choices,
        target,
        search_config.tolerance,
        calibration,
        data.train,
        data.val,
        teacher if search_config.kd_alpha > 0 else None,
        finetune,
        config,
        progress=progress,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(
        out / "args.yaml",
        {"command": "rank", "run": str(run), **asdict(config), "environment": environment()},
    )
    selection.predictor.save(out / "predictor.pt")
    selection.spec.save(out / "arch.json")
    write_json(
        out / "selection.json",
        {"candidates": selection.candidates, "seconds": round(selection.seconds, 2)},
    )
    metrics: dict[str, Any] = {
        "space": space.name,
        "selected_macs": selection.spec.macs(),
        "selected_macs_ratio": selection.spec.macs_ratio(),
        "selected_val_acc": max(c["val_acc"] for c in selection.candidates),
        "samples": config.samples,
        "pool": config.pool,
        "top_k": config.top_k,
    }
    if config.holdout > 0:
        standalone = TrainConfig(
            epochs=config.holdout_epochs, lr=0.1, seed=config.seed, device=search_config.device
        )
        evidence = ranking_evidence(
            supernet,
            selection.predictor,
            strategy.choices,
            target,
            calibration,
            data.train,
            data.val,
            data.test,
            standalone,
            config,
            progress=progress,
        )
        metrics |= {
            "correlations": evidence["table"],
            "holdout": evidence["holdout"],
            "holdout_epochs": config.holdout_epochs,
        }
        plot_rank_scatter(evidence, out / "rank_scatter.png")
    write_json(out / "rank_metrics.json", metrics)
    return metrics


def _load_search_run(run: Path) -> tuple[RunOptions, SearchConfig]:
    """The options of a finished (or checkpointed) ``nas search`` run directory."""
    args_path, ckpt = run / "args.yaml", run / SEARCH_CHECKPOINT
    if not args_path.is_file() or not ckpt.is_file():
        raise ConfigError(
            f"{run} is not a search run directory (needs args.yaml and "
            f"{SEARCH_CHECKPOINT} written by nas search)"
        )
    try:
        stored = yaml.safe_load(args_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read {args_path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(stored, dict) or stored.get("command") != "search":
        raise ConfigError(f"{args_path} was not written by nas search")
    run_fields = {f.name for f in fields(RunOptions)}
    search_fields = {f.name for f in fields(SearchConfig)}
    options = RunOptions(**{k: v for k, v in stored.items() if k in run_fields})
    values = {k: v for k, v in stored.items() if k in search_fields}
    values["width_ratios"] = tuple(values.get("width_ratios", SearchConfig().width_ratios))
    return options, SearchConfig(**values)


def _load_supernet(
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


# -- nas sweep -----------------------------------------------------------------------------------
SWEEP_VOLATILE = ("trials", "workers")  # may change when a sweep is run again
SWEEP_WARMUP = "warmup.pt"  # in the sweep directory: the warm-up every trial starts from


def run_sweep(
    options: RunOptions, search: SearchConfig, sweep: SweepConfig, *, uniform: bool = True
) -> dict[str, Any]:
    """``nas sweep``: an Optuna study of searches sharing one baseline (see :mod:`nas.sweep`).

    Writes into ``options.out_dir``: ``trials.csv``, ``pareto.csv``, ``uniform.csv``,
    ``pareto.png``, ``metrics.json`` (hypervolume), ``args.yaml``, ``baseline/``,
    ``trials/trial-NNNN/`` (each a ``nas search`` run directory with its extracted model) and,
    with the default storage, ``journal.log``. Re-running the same command resumes.
    """
    sweep.validate()
    search.validate()
    out = Path(options.out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output path exists and is not a directory: {out}")
    search_spaces.get_entry(options.space)
    data = options.load(search.seed)
    space = search_spaces.create(
        options.space,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    for budget in sweep.budgets or sweep.macs_range or ():
        replace(search, target_macs=str(budget)).target_for(space)
    initial = _initial_weights(options.weights, space)
    record = config_record(sweep)
    resolved = (
        _resolved_args(options, search, data.describe())
        | {
            "command": "sweep",
            "sweep": {k: v for k, v in record.items() if k not in SWEEP_VOLATILE},
            "uniform": uniform,
        }
        | {k: record[k] for k in SWEEP_VOLATILE}
    )
    with sweep_lock(out):
        _write_or_check_args(out, resolved, resume=True, volatile=(*SWEEP_VOLATILE, "uniform"))
        base_config = TrainConfig(
            epochs=options.baseline_epochs,
            lr=options.baseline_lr,
            seed=search.seed,
            device=search.device,
        )
        baseline = _train_full(
            space,
            data,
            initial,
            base_config,
            out / "baseline",
            resume=True,
            progress=options.progress,
        )
        if search.warmup_epochs:
            _shared_warmup(options, search, space, out)
        cover_budgets(open_study(out, sweep), sweep)
    study = open_study(out, sweep)
    _run_workers(options, search, sweep, out)
    return _sweep_outputs(study, out, baseline, data, search, sweep, uniform, options.progress)


def _shared_warmup(
    options: RunOptions, search: SearchConfig, space: SearchSpace, out: Path
) -> Path:
    """The warm-up every trial starts from (``DIR/warmup.pt``): the epochs a trial's search
    would begin with, run once on the baseline and fresh loaders, exactly as the trial would."""
    data = options.load(search.seed)
    if data.val is None:
        raise ConfigError("a search needs a validation split: --val-fraction must be > 0")
    seed_everything(search.seed)
    baseline = space.build()
    _load_fitting(baseline, load_state_dict_file(out / "baseline" / "model.pt"))
    return warm_up(
        baseline.to(search.device).eval(),
        space,
        data.train,
        data.val,
        config=search,
        path=out / SWEEP_WARMUP,
        progress=options.progress,
    )


def _run_workers(options: RunOptions, search: SearchConfig, sweep: SweepConfig, out: Path) -> None:
    """This process and ``workers - 1`` more run trials until the study has enough."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    quiet = replace(options, progress=False)
    helpers = [
        ctx.Process(target=sweep_worker, args=(quiet, search, sweep, False))
        for _ in range(sweep.workers - 1)
    ]
    for p in helpers:
        p.start()
    try:
        sweep_worker(options, search, sweep, options.progress)
    finally:
        for p in helpers:
            p.join()
    failed = [p.exitcode for p in helpers if p.exitcode]
    if failed:
        raise ConfigError(f"{len(failed)} sweep worker(s) failed (exit code {failed[0]})")


def sweep_worker(
    options: RunOptions, search: SearchConfig, sweep: SweepConfig, progress: bool
) -> None:
    """Run trials of the study in ``options.out_dir`` until it has ``sweep.trials``."""
    out = Path(options.out_dir)
    study = open_study(out, sweep)
    weights = str(out / "baseline" / "model.pt")
    with progress_bar(sweep.trials, counted(study), progress) as bar:
        while (trial := next_trial(study, out, sweep)) is not None:
            config = sweep.suggest(trial, search)
            run_dir = out / "trials" / f"trial-{trial.number:04d}"
            trial_options = replace(
                options,
                out_dir=str(run_dir),
                weights=weights,
                resume=True,
                overwrite=False,
                progress=False,
            )
            warmup = out / SWEEP_WARMUP if search.warmup_epochs else None
            try:
                metrics, seconds = timed(run_search, trial_options, config, warmup=warmup)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            for key in (
                "searched_acc",
                "macs",
                "macs_ratio",
                "params",
                "baseline_acc",
                "relaxation_gap",
            ):
                trial.set_user_attr(key, metrics[key])
            trial.set_user_attr("seconds", round(seconds, 2))
            trial.set_user_attr("run_dir", str(run_dir.relative_to(out)))
            study.tell(trial, [metrics["searched_acc"], metrics["macs"]])
            bar.n = counted(study)
            bar.set_postfix(
                acc=f"{metrics['searched_acc']:.2f}",
                macs=f"{metrics['macs_ratio']:.2f}",
                refresh=True,
            )


def _sweep_outputs(
    study: optuna.Study,
    out: Path,
    baseline: torch.nn.Module,
    data: DataBundle,
    search: SearchConfig,
    sweep: SweepConfig,
    uniform: bool,
    progress: bool,
) -> dict[str, Any]:
    rows = trial_rows(study)
    front = pareto_rows(rows)
    full_acc = evaluate(baseline, data.test, device=search.device).accuracy
    targets = sorted(
        {float(b) for b in sweep.budgets}
        if sweep.budgets
        else {round(float(r["target_macs"]), 2) for r in front}
    )
    uniform_rows = (
        [uniform_point(out, t, out / "baseline", data, search, progress) for t in targets]
        if uniform
        else []
    )
    with sweep_lock(out):
        write_csv(out / "trials.csv", rows)
        write_csv(out / "pareto.csv", front)
        write_csv(out / "uniform.csv", uniform_rows)
        metrics = {
            "trials": len(rows),
            "complete": sum(r["state"] == "COMPLETE" for r in rows),
            "pareto_points": len(front),
            "full_acc": full_acc,
            "full_macs": space_of(out / "baseline").macs(),
            "hypervolume": hypervolume([(r["macs_ratio"], r["searched_acc"]) for r in front]),
            "uniform_hypervolume": hypervolume(
                [(u["macs_ratio"], u["test_acc"]) for u in uniform_rows]
            ),
            "objectives": list(OBJECTIVES),
            "sampler": sweep.sampler,
            "study": sweep.study,
        }
        write_json(out / "metrics.json", metrics)
        plot_pareto([(out.name, out)], out / "pareto.png")
    return metrics


# -- nas transfer --------------------------------------------------------------------------------
def run_transfer(
    arch: str | Path,
    data: DataOptions,
    config: TrainConfig,
    *,
    out_dir: str | Path = "runs/transfer",
    weights: str | Path | None = None,
    mode: str | None = None,
    compare: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """``nas transfer``: a found width spec trained on another dataset.

    Writes ``arch.json`` (the spec for the new task), ``model.pt``, ``model.ts``,
    ``metrics.json``, ``summary.csv``, ``args.yaml`` and, with ``compare``, ``transfer.png``.
    """
    from nas.plots import plot_transfer
    from nas.transfer import check_mode, transfer

    out = prepare_out_dir(out_dir, overwrite=overwrite)
    spec = WidthSpec.load(arch)
    config.validate()
    check_mode(mode, has_weights=weights is not None)
    state = load_state_dict_file(weights) if weights is not None else None
    if state is not None:  # refuse a spec/weights mismatch before any data is read
        from nas.transfer import inherit_weights

        inherit_weights(spec.get_space().build(spec.widths), spec, state)
    bundle = data.load(config.seed)
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(
        out / "args.yaml",
        {
            "command": "transfer",
            "arch": str(arch),
            "weights": None if weights is None else str(weights),
            "mode": mode,
            "compare": compare,
            **asdict(data),
            **asdict(config),
            "data": bundle.describe(),
            "environment": environment(),
        },
    )
    result = transfer(
        spec,
        bundle.train,
        bundle.test,
        num_classes=bundle.num_classes,
        in_channels=bundle.in_channels,
        input_size=bundle.input_size,
        config=config,
        val_loader=bundle.val,
        weights=state,
        mode=mode,
        compare=compare,
        out_dir=out,
        progress=progress,
    )
    save_model(result.model, result.spec, out)
    metrics = result.metrics | {"dataset": data.dataset, "arch": str(arch)}
    write_json(out / "metrics.json", metrics)
    if compare:
        plot_transfer(metrics, out / "transfer.png")
    return metrics
