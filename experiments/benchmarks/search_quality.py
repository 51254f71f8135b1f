"""Does the width search find better networks than uniform width at the same MACs, on CIFAR-10?

On real CIFAR-10 images (``cifar10-5k.npz``: 5,085 training and 1,017 test images; see
``experiments/make_cifar_subset.py``), for ``resnet20_b`` (stage widths searchable) and
``resnet20`` (option A: only the block-internal widths), at 25 % and 50 % of the MACs:

1. the full baseline of each space is trained once (``nas search``'s baseline: 30 epochs, lr
   0.1, seed 0; cached);
2. per space, seed and weight sampling (``--samplings``: ``hard``, ``relaxed``, ``sandwich``)
   and architecture signal (``--arch-signals``: ``labels``, ``teacher``, ``consistency``; what
   ``nas search --arch-signal`` learns the architecture from) one warm-up of the supernet is
   shared by the targets and signals (it depends on neither), then one search per target
   (cached and resumable: every chooser of a seed reuses it);
3. per chooser (``--select``: ``argmax``, ``evolution``, ``greedy``, ``predictor``) the widths
   are chosen on the validation split (one-shot scores on the supernet, BN statistics recomputed
   for each candidate), and the delivered network is compared with the **uniform-width network
   of the same MACs** under two protocols (``--protocols``):

   * ``inherited``: both extracted from the same final supernet (BN recalibrated for their
     widths) and fine-tuned with distillation from the baseline, the same epochs, options, seed
     and batches (what ``nas search --compare`` does);
   * ``scratch`` (Liu et al. 2019, "Rethinking the value of network pruning"): both trained from
     the same random initialisation seed, the same ``--scratch-epochs``, distillation, options
     and batches: only the widths differ.

Splits: the search trains its weights on one half of the training split and its architecture on
the other; the validation split (10 %) trains nothing and serves every choice; the **test
accuracies are only reported** (nothing here is chosen on them).

Printed (and written to ``--out/report.md``): per space, target, sampling, chooser and protocol
the paired difference delivered - uniform on test (mean, standard error, 95 % confidence
interval from the t distribution, every seed), the same on validation, the MAC ratios and where
the channels went (mean width ratio per stage); then the targets' verdicts. Every finished row is
appended to ``--out/results.jsonl`` with the commit, date, machine, threads, torch version and
command (re-running resumes: finished rows are skipped). Baselines, warm-ups and searches are
cached under ``--cache``.

    python experiments/benchmarks/search_quality.py --spaces resnet20_b --targets 0.25 \\
        --seeds 0 1 2 3 4 5 --select argmax evolution
    python experiments/benchmarks/search_quality.py --report          # the table of what is done
    python experiments/benchmarks/search_quality.py --quick --dataset digits --out /tmp/sq
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

import nas
from nas.data import DataBundle, load_data, reseeded
from nas.engine import loader_state, restore_loader, seed_everything
from nas.selection import SELECTIONS
from nas.width_search import (
    SearchConfig,
    SearchOutcome,
    check_compare,
    deliver,
    search_widths,
    select_network,
    uniform_twin,
    warm_up,
)
from nas.width_search.config import ARCH_SIGNALS, WEIGHT_SAMPLING
from nas.width_search.setup import search_budget
from search_spaces import SearchSpace, WidthSpec

ROOT = Path(__file__).resolve().parents[2]
SPACES = ("resnet20_b", "resnet20")
TARGETS = (0.25, 0.5)
PROTOCOLS = ("inherited", "scratch")
BASELINE_LR = 0.1
KEY = ("space", "target", "sampling", "signal", "select", "protocol", "seed")
DEFAULTS = {"signal": "labels"}  # rows written before a key existed were measured at these
# the settings a row was measured with (a row lacking one was measured at its default)
SETTINGS = {
    "dataset": "npz:../shared/data/cifar10-5k.npz",
    "baseline_epochs": 30,
    "warmup_epochs": 5,
    "search_epochs": 12,
    "finetune_epochs": 10,
    "scratch_epochs": 20,
    "population": 16,
    "generations": 8,
    "calib_images": 2000,
}


def key_of(row: dict[str, Any], keys: Sequence[str] = KEY) -> tuple[Any, ...]:
    """``row``'s values of ``keys`` (a key it predates: its default)."""
    return tuple(row.get(k, DEFAULTS.get(k)) for k in keys)


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in SETTINGS}


def same_settings(row: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether ``row`` was measured with ``settings`` (the data by file name, wherever it was
    read from)."""
    return all(
        _data_file(row.get(k, SETTINGS[k])) == _data_file(v)
        if k == "dataset"
        else row.get(k, SETTINGS[k]) == v
        for k, v in settings.items()
    )


def _data_file(dataset: Any) -> str:
    """``npz:/any/where/cifar10-5k.npz`` -> ``npz:cifar10-5k.npz``."""
    kind, sep, path = str(dataset).partition(":")
    return f"{kind}:{Path(path).name}" if sep else kind


def tag(settings: dict[str, Any], *keys: str) -> str:
    """A cache name's part that says which data and epochs made the file."""
    data = Path(str(settings["dataset"]).split(":", 1)[-1]).stem
    return "-".join([data, *(f"{k.split('_')[0]}{settings[k]}" for k in keys)])


def train_baseline(space: SearchSpace, data: DataBundle, epochs: int, path: Path) -> nn.Module:
    """The full network as ``nas search`` trains it (seed 0), cached in ``path``."""
    model = space.build()
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    config = nas.TrainConfig(epochs=epochs, lr=BASELINE_LR, seed=0)
    seed_everything(0)
    nas.train_model(model, data.train, config=config, val_loader=data.val, progress=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


def search_once(
    space: SearchSpace,
    data: DataBundle,
    baseline: nn.Module,
    config: SearchConfig,
    warmup: Path,
    search_dir: Path | None,
) -> tuple[SearchOutcome, float]:
    """The search from the shared warm-up (resumed from ``search_dir``, where it checkpoints),
    and its seconds; the training loader is rewound to where the search began."""
    assert data.val is not None
    fresh = loader_state(data.train)
    start = time.perf_counter()
    outcome = search_widths(
        baseline,
        space,
        data.train,
        data.val,
        config=config,
        warmup=warmup,
        out_dir=search_dir,
        resume=search_dir is not None,
        progress=False,
    )
    restore_loader(data.train, fresh)
    return outcome, time.perf_counter() - start


def run(
    space: SearchSpace,
    data: DataBundle,
    baseline: nn.Module,
    baseline_acc: float,
    config: SearchConfig,
    warmup: Path,
    search_dir: Path | None = None,
) -> dict[str, Any]:
    """One search at ``config`` and what ``nas search --compare`` delivers with its uniform twin
    (used by ``method_table.py``)."""
    assert data.val is not None
    outcome, search_s = search_once(space, data, baseline, config, warmup, search_dir)
    outcome, chosen = select_network(
        outcome, baseline, data.train, data.val, config, progress=False
    )
    start = time.perf_counter()
    _, metrics = deliver(
        outcome,
        baseline,
        data.train,
        data.val,
        data.test,
        config,
        baseline_acc=baseline_acc,
        progress=False,
    )
    metrics |= (chosen.metrics() if chosen is not None else {}) | {
        "search_s": round(search_s, 1),
        "finetune_s": round(time.perf_counter() - start, 1),
        "widths": dict(outcome.spec.widths),
    }
    return metrics


def trained(
    outcome: SearchOutcome,
    spec: WidthSpec,
    baseline: nn.Module,
    data: DataBundle,
    config: SearchConfig,
    start: dict[str, Any],
) -> dict[str, Any]:
    """``spec`` delivered as the product delivers the found network (inherited and fine-tuned,
    or with ``config.from_scratch`` trained from the seed's initialisation), from the loader
    state ``start``: test and validation accuracy."""
    assert data.val is not None
    restore_loader(data.train, start)
    t0 = time.perf_counter()
    _, m = deliver(
        replace(outcome, spec=spec),
        baseline,
        data.train,
        data.val,
        data.test,
        replace(config, compare=False),
        baseline_acc=0.0,
        progress=False,
    )
    return {
        "acc": m["searched_acc"],
        "val_acc": m["searched_val_acc"],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def provenance(threads: int) -> dict[str, Any]:
    """Where a row was measured: commit, date, machine, threads, torch version, command."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        commit += "-dirty" if _git("status", "--porcelain", "--untracked-files=no") else ""
    except OSError:
        commit = ""
    return {
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or platform.node()}",
        "threads": threads,
        "torch": torch.__version__,
        "command": " ".join(["python", "experiments/benchmarks/search_quality.py", *sys.argv[1:]]),
    }


# -- results files (shared by the benchmarks that build on this one) -----------------------------
def load_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``results.jsonl`` ([] where there is none yet)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_row(path: Path, row: dict[str, Any]) -> None:
    """One finished row appended to ``results.jsonl`` (a rerun resumes after it)."""
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def default_widths(results: Path, space: str, target: float, seed: int) -> dict[str, int] | None:
    """The widths ``nas search``'s defaults delivered for ``space`` at ``target`` and ``seed``
    (the inherited protocol's row of this benchmark's ``results``), or None if not measured."""
    sampling, _, select = DEFAULT.partition("/")
    for r in load_rows(results):
        if key_of(r, ("space", "target", "sampling", "signal", "select", "protocol", "seed")) == (
            space,
            target,
            sampling,
            "labels",
            select,
            "inherited",
            seed,
        ):
            return dict(r["widths"])
    return None


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (0 for one value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


# -- the report -----------------------------------------------------------------------------------
def t_interval(diffs: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean, standard error and the 95 % confidence interval (t distribution) of ``diffs``."""
    from scipy import stats

    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, math.nan, math.nan, math.nan
    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
    half = float(stats.t.ppf(0.975, len(diffs) - 1)) * se
    return mean, se, mean - half, mean + half


def verdicts(rows: list[dict[str, Any]], default: str) -> list[str]:
    """The issue's targets on the ``default`` configuration (``SAMPLING/SELECT``): inherited,
    delivered - uniform >= +1.0 at 25 % on resnet20_b with the 95 % CI above zero and >= 0 at
    50 %; from scratch >= 0 at 25 %."""
    sampling, _, select = default.partition("/")
    goals = [
        ("resnet20_b", 0.25, "inherited", 1.0, True),
        ("resnet20_b", 0.5, "inherited", 0.0, False),
        ("resnet20", 0.5, "inherited", 0.0, False),
        ("resnet20_b", 0.25, "scratch", 0.0, False),
        ("resnet20", 0.25, "scratch", 0.0, False),
    ]
    lines = []
    for space, target, protocol, goal, ci in goals:
        g = [
            r
            for r in rows
            if key_of(r, ("space", "target", "sampling", "signal", "select", "protocol"))
            == (space, target, sampling, "labels", select, protocol)
        ]
        if not g:
            lines.append(f"- {space} @ {target:g} {protocol}: not measured")
            continue
        mean, se, lo, hi = t_interval([r["acc"] - r["uniform_acc"] for r in g])
        met = mean >= goal and (not ci or lo > 0)
        rule = f">= {goal:+.1f}" + (" with the 95 % CI above 0" if ci else "")
        lines.append(
            f"- {space} @ {target:g} {protocol} ({default}, {len(g)} seeds): {mean:+.2f} +- "
            f"{se:.2f}, 95 % CI [{lo:+.2f}, {hi:+.2f}] (target {rule}): "
            f"{'met' if met else 'MISSED'}"
        )
    return lines


# the configuration the product ships: nas search's defaults
DEFAULT = f"{nas.SearchConfig().weight_sampling}/{nas.SearchConfig().select}"


def report(rows: list[dict[str, Any]], default: str = DEFAULT) -> str:
    """The markdown report of ``rows``: paired differences, validation, where channels went,
    and the targets' verdicts on the ``default`` configuration."""
    out: list[str] = []
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(key_of(r, KEY[:-1]), []).append(r)
    out.append(
        "| space | target | sampling | arch signal | select | protocol | seeds | delivered % | "
        "uniform % | "
        "delivered - uniform, test (mean +- SE) | 95 % CI | per seed | delivered val % | "
        "delivered - uniform, validation | one-shot beats uniform | MAC ratio delivered / "
        "uniform |"
    )
    out.append("| --- " * 16 + "|")
    for key in sorted(groups, key=str):
        g = sorted(groups[key], key=lambda r: r["seed"])
        diffs = [r["acc"] - r["uniform_acc"] for r in g]
        vdiffs = [r["val_acc"] - r["uniform_val_acc"] for r in g]
        mean, se, lo, hi = t_interval(diffs)
        vmean, vse, _, _ = t_interval(vdiffs)
        wins = sum(bool(r.get("beats_uniform_oneshot")) for r in g)
        out.append(
            f"| {key[0]} | {key[1]:g} | {key[2]} | {key[3]} | {key[4]} | {key[5]} | {len(g)} | "
            f"{statistics.fmean(r['acc'] for r in g):.2f} | "
            f"{statistics.fmean(r['uniform_acc'] for r in g):.2f} | "
            f"**{mean:+.2f}** +- {se:.2f} | [{lo:+.2f}, {hi:+.2f}] | "
            f"{', '.join(f'{d:+.2f}' for d in diffs)} | "
            f"{statistics.fmean(r['val_acc'] for r in g):.2f} | {vmean:+.2f} +- {vse:.2f} | "
            f"{wins}/{len(g)} | {min(r['macs_ratio'] for r in g):.3f}-"
            f"{max(r['macs_ratio'] for r in g):.3f} / "
            f"{statistics.fmean(r['uniform_macs_ratio'] for r in g):.3f} |"
        )
    out.append("")
    out.append(
        "Where the channels went (mean width ratio per stage, delivered / uniform; inherited rows):"
    )
    out.append("")
    for key in sorted(groups, key=str):
        if key[5] != "inherited":
            continue
        g = groups[key]
        stages = list(g[0]["stage_width_ratios"])
        cells = []
        for s in stages:
            d = statistics.fmean(r["stage_width_ratios"][s] for r in g)
            u = statistics.fmean(r["uniform_stage_width_ratios"][s] for r in g)
            cells.append(f"{s} {d:.2f} / {u:.2f}")
        signal = "" if key[3] == "labels" else f" ({key[3]} signal)"
        out.append(f"- {key[0]} @ {key[1]:g}, {key[2]}/{key[4]}{signal}: " + ", ".join(cells))
    out += ["", f"Targets ({default}, the defaults):", "", *verdicts(rows, default)]
    return "\n".join(out) + "\n"


# -- the benchmark -------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--dataset",
        default=None,
        help="the data, e.g. npz:PATH/cifar10-5k.npz (experiments/make_cifar_subset.py builds "
        "it); --report alone reads the rows of any copy of that file",
    )
    parser.add_argument("--spaces", nargs="+", default=list(SPACES))
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--samplings", nargs="+", default=["sandwich"], choices=WEIGHT_SAMPLING)
    parser.add_argument(
        "--arch-signals",
        nargs="+",
        default=["labels"],
        choices=ARCH_SIGNALS,
        help="what the architecture steps learn from (nas search --arch-signal)",
    )
    parser.add_argument(
        "--select", nargs="+", default=["argmax", "evolution"], choices=SELECTIONS.names()
    )
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--baseline-epochs", type=int, default=SETTINGS["baseline_epochs"])
    parser.add_argument("--warmup-epochs", type=int, default=SETTINGS["warmup_epochs"])
    parser.add_argument("--search-epochs", type=int, default=SETTINGS["search_epochs"])
    parser.add_argument("--finetune-epochs", type=int, default=SETTINGS["finetune_epochs"])
    parser.add_argument(
        "--scratch-epochs",
        type=int,
        default=SETTINGS["scratch_epochs"],
        help="epochs of the from-scratch protocol (both networks)",
    )
    parser.add_argument("--population", type=int, default=SETTINGS["population"])
    parser.add_argument("--generations", type=int, default=SETTINGS["generations"])
    parser.add_argument("--calib-images", type=int, default=SETTINGS["calib_images"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--out",
        default=None,
        help="results.jsonl and report.md (default: experiments/results/search_quality, "
        "committed; with --quick a temporary folder)",
    )
    parser.add_argument(
        "--cache",
        default=None,
        help="baselines, warm-ups and searches (default: runs/search_quality; with --quick a "
        "temporary folder)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 2/1/1/1 epochs, one seed, a small evolution",
    )
    parser.add_argument("--report", action="store_true", help="only print the report")
    parser.add_argument(
        "--default",
        default=DEFAULT,
        help="SAMPLING/SELECT the targets are judged on (default: nas search's)",
    )
    args = parser.parse_args()
    if args.dataset is None and not args.report:
        parser.error("--dataset is required (e.g. npz:PATH/cifar10-5k.npz)")
    args.dataset = args.dataset or SETTINGS["dataset"]
    if args.quick:
        args.baseline_epochs, args.warmup_epochs, args.search_epochs = 2, 1, 1
        args.finetune_epochs, args.scratch_epochs, args.seeds = 1, 1, args.seeds[:1]
        args.population, args.generations = 4, 1
    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.gettempdir()) / "search_quality-quick"
    out = Path(args.out or (scratch if args.quick else ROOT / "experiments/results/search_quality"))
    cache = Path(args.cache or (scratch / "cache" if args.quick else "runs/search_quality"))
    settings = settings_of(args)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows = (
        [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
        if results.is_file()
        else []
    )
    rows = [r for r in rows if same_settings(r, settings)]  # others are another benchmark's
    if args.report:
        text = report(rows, args.default)
        (out / "report.md").write_text(text)
        print(text)
        return
    done = {key_of(r) for r in rows}
    data = load_data(args.dataset, seed=0)
    started = time.perf_counter()
    for space_name in args.spaces:
        space = nas.create_space(
            space_name,
            num_classes=data.num_classes,
            in_channels=data.in_channels,
            input_size=data.input_size,
        )
        baseline = train_baseline(
            space,
            data,
            args.baseline_epochs,
            cache / f"baseline-{space_name}-{tag(settings, 'baseline_epochs')}.pt",
        )
        baseline_acc = nas.evaluate(baseline, data.test).accuracy
        print(f"{space_name}: baseline {baseline_acc:.2f} %", flush=True)
        for seed in args.seeds:
            seeded = replace(data, train=reseeded(data.train, seed))
            assert seeded.val is not None
            for sampling, signal in itertools.product(args.samplings, args.arch_signals):
                todo = [
                    (t, s, p)
                    for t in args.targets
                    for s in args.select
                    for p in args.protocols
                    if (space_name, t, sampling, signal, s, p, seed) not in done
                ]
                if not todo:
                    continue
                base = SearchConfig(
                    seed=seed,
                    warmup_epochs=args.warmup_epochs,
                    search_epochs=args.search_epochs,
                    finetune_epochs=args.finetune_epochs,
                    weight_sampling=sampling,
                    arch_signal=signal,
                    population=args.population,
                    generations=args.generations,
                    calib_images=args.calib_images,
                )
                warm = cache / (
                    f"warmup-{space_name}-{sampling}-{seed}-"
                    f"{tag(settings, 'baseline_epochs', 'warmup_epochs', 'calib_images')}.pt"
                )
                for target in args.targets:  # a uniform twin exists, before any work
                    at = replace(base, target_macs=f"{target:g}", compare=True)
                    check_compare(search_budget(at, space), at)
                search_tag = tag(
                    settings, "baseline_epochs", "warmup_epochs", "search_epochs", "calib_images"
                )
                searched = sampling if signal == "labels" else f"{sampling}-{signal}"
                warm_up(
                    baseline,
                    space,
                    seeded.train,
                    seeded.val,
                    config=base,
                    path=warm,
                    progress=False,
                )
                for target in args.targets:
                    jobs = [(s, p) for t, s, p in todo if t == target]
                    if not jobs:
                        continue
                    config = replace(base, target_macs=f"{target:g}")
                    fresh = loader_state(seeded.train)
                    outcome, search_s = search_once(
                        space,
                        seeded,
                        baseline,
                        config,
                        warm,
                        cache / f"search-{space_name}-{searched}-{target:g}-{seed}-{search_tag}",
                    )
                    twins: dict[tuple[Any, ...], dict[str, Any]] = {}
                    for select in dict.fromkeys(s for s, _ in jobs):
                        chosen_config = replace(config, select=select)
                        picked, chosen = select_network(
                            outcome,
                            baseline,
                            seeded.train,
                            seeded.val,
                            chosen_config,
                            progress=False,
                        )
                        assert chosen is not None
                        twin = uniform_twin(
                            picked.budget, picked.spec.macs(), multiple=config.width_multiple
                        )
                        for protocol in [p for s, p in jobs if s == select]:
                            pconf = (
                                replace(
                                    config, from_scratch=True, finetune_epochs=args.scratch_epochs
                                )
                                if protocol == "scratch"
                                else config
                            )
                            mine = trained(outcome, picked.spec, baseline, seeded, pconf, fresh)
                            tkey = (protocol, tuple(twin.widths.values()))
                            if tkey not in twins:
                                twins[tkey] = trained(outcome, twin, baseline, seeded, pconf, fresh)
                            ref = twins[tkey]
                            row = {
                                "space": space_name,
                                "target": target,
                                "sampling": sampling,
                                "signal": signal,
                                "select": select,
                                "protocol": protocol,
                                "seed": seed,
                                "acc": mine["acc"],
                                "val_acc": mine["val_acc"],
                                "uniform_acc": ref["acc"],
                                "uniform_val_acc": ref["val_acc"],
                                "macs_ratio": picked.spec.macs_ratio(),
                                "uniform_macs_ratio": twin.macs_ratio(),
                                "widths": dict(picked.spec.widths),
                                "uniform_widths": dict(twin.widths),
                                "stage_width_ratios": picked.spec.stage_width_ratios(),
                                "uniform_stage_width_ratios": twin.stage_width_ratios(),
                                "baseline_acc": baseline_acc,
                                "arch_confidence": outcome.arch_confidence,
                                "argmax_macs_ratio": space.macs(outcome.argmax_widths)
                                / space.macs(),
                                "search_s": round(search_s, 1),
                                "train_s": mine["seconds"],
                                "epochs": pconf.finetune_epochs,
                                **chosen.metrics(),
                                **settings,
                                **provenance(args.threads),
                            }
                            rows.append(row)
                            with results.open("a") as f:
                                f.write(json.dumps(row) + "\n")
                            print(
                                f"{space_name} @ {target:g} {searched}/{select} {protocol} seed "
                                f"{seed}: delivered {row['acc']:.2f} % ({row['macs_ratio']:.3f})"
                                f" vs uniform {row['uniform_acc']:.2f} % (val "
                                f"{row['val_acc']:.2f} vs {row['uniform_val_acc']:.2f}; one-shot"
                                f" loss {row['oneshot_val_loss']:.3f} vs "
                                f"{row['uniform_oneshot_val_loss']:.3f}) "
                                f"({time.perf_counter() - started:.0f} s in all)",
                                flush=True,
                            )
    text = report(rows, args.default)
    (out / "report.md").write_text(text)
    print(f"\n{time.perf_counter() - started:.0f} s in all\n")
    print(text)


if __name__ == "__main__":
    main()
