"""Does kernel feature distillation (``--kd-features kernel``) help the fine-tuning of a smaller
network beyond logit distillation alone?

On real CIFAR-10 images (``cifar10-5k.npz``), ``resnet20_b`` at 25 % of the MACs, two ways a
smaller network is delivered, each fine-tuned twice **from the same starting weights, with the
same epochs, options, seed and batches**: once with logit distillation alone (``--kd-features
none``, alpha 0.9, T 4) and once with the kernel feature loss added (``--kd-features kernel``):

* ``prune``: ``nas prune --criterion l1 --allocation uniform --target-macs 0.25`` from the
  baseline of ``search_quality.py`` (cached there), 10 fine-tuning epochs;
* ``search``: the network ``nas search`` delivers with its defaults (sandwich training,
  evolution), as ``search_quality.py`` measured it: its searched widths (from that benchmark's
  results, ``--search-results``) extracted from its cached supernet (``--cache``) and fine-tuned
  as ``nas search`` does (10 epochs).

The paired difference kernel - logits on test (mean, standard error, 95 % confidence interval,
every seed) and on validation is printed and written to ``--out/report.md``; each row goes to
``--out/results.jsonl`` with its provenance as it lands (re-running resumes). Nothing is chosen on
the test split (the feature loss's weight is the option's default, set from the losses'
magnitudes at the start of fine-tuning, not tuned here).

    python experiments/benchmarks/feature_distillation.py \\
        --dataset npz:../shared/data/cifar10-5k.npz --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import nas
from nas.data import load_data, reseeded
from nas.engine import loader_state
from nas.pruning import PruneConfig, prune_network
from nas.width_search import SearchConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import (  # the same baseline, cached searches and statistics
    SETTINGS,
    append_row,
    default_widths,
    load_rows,
    provenance,
    search_once,
    t_interval,
    tag,
    train_baseline,
    trained,
)

ROOT = Path(__file__).resolve().parents[2]
ARMS = ("prune", "search")
KINDS = ("none", "kernel")
SPACE, TARGET = "resnet20_b", 0.25


def searched_widths(results: Path, seed: int) -> dict[str, int]:
    """The widths ``nas search``'s defaults delivered for ``seed`` in search_quality's rows."""
    widths = default_widths(results, SPACE, TARGET, seed)
    if widths is None:
        raise SystemExit(f"error: {results} has no {SPACE} @ {TARGET} search row for seed {seed}")
    return widths


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dataset", required=True, help="e.g. npz:../shared/data/cifar10-5k.npz")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--finetune-epochs", type=int, default=SETTINGS["finetune_epochs"])
    parser.add_argument("--cache", default=str(ROOT / "runs/search_quality"))
    parser.add_argument(
        "--search-results", default=str(ROOT / "experiments/results/search_quality/results.jsonl")
    )
    parser.add_argument("--out", default=str(ROOT / "experiments/results/feature_distillation"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="only print the report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows = load_rows(results)
    if not args.report:
        run(args, rows, results)
    text = report(rows)
    (out / "report.md").write_text(text)
    print(text)


def run(args: argparse.Namespace, rows: list[dict[str, Any]], results: Path) -> None:
    done = {(r["arm"], r["seed"], r["kd_features"]) for r in rows}
    settings = dict(SETTINGS, dataset=args.dataset)
    data = load_data(args.dataset, seed=0)
    space = nas.create_space(
        SPACE,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    cache = Path(args.cache)
    baseline = train_baseline(
        space,
        data,
        settings["baseline_epochs"],
        cache / f"baseline-{SPACE}-{tag(settings, 'baseline_epochs')}.pt",
    )
    baseline_acc = nas.evaluate(baseline, data.test).accuracy
    assert data.val is not None
    for seed in args.seeds:
        seeded = replace(data, train=reseeded(data.train, seed))
        for arm in args.arms:
            todo = [k for k in KINDS if (arm, seed, k) not in done]
            if not todo:
                continue
            if arm == "search":
                config = SearchConfig(
                    seed=seed,
                    target_macs=f"{TARGET:g}",
                    warmup_epochs=settings["warmup_epochs"],
                    search_epochs=settings["search_epochs"],
                    finetune_epochs=args.finetune_epochs,
                    calib_images=settings["calib_images"],
                )
                sampling = config.weight_sampling
                warm = cache / (
                    f"warmup-{SPACE}-{sampling}-{seed}-"
                    f"{tag(settings, 'baseline_epochs', 'warmup_epochs', 'calib_images')}.pt"
                )
                search_dir = cache / (
                    f"search-{SPACE}-{sampling}-{TARGET:g}-{seed}-"
                    + tag(
                        settings,
                        "baseline_epochs",
                        "warmup_epochs",
                        "search_epochs",
                        "calib_images",
                    )
                )
                if not (search_dir / "search_checkpoint.pt").is_file() or not warm.is_file():
                    raise SystemExit(
                        f"error: no cached search in {search_dir} (run search_quality)"
                    )
                outcome, _ = search_once(space, seeded, baseline, config, warm, search_dir)
                spec = space.spec(searched_widths(Path(args.search_results), seed))
                fresh = loader_state(seeded.train)
            for kind in todo:
                start = time.perf_counter()
                if arm == "search":
                    m = trained(
                        outcome, spec, baseline, seeded, replace(config, kd_features=kind), fresh
                    )
                    acc, val_acc, macs_ratio = m["acc"], m["val_acc"], spec.macs_ratio()
                else:
                    pconf = PruneConfig(
                        criterion="l1",
                        allocation="uniform",
                        target_macs=f"{TARGET:g}",
                        seed=seed,
                        finetune_epochs=args.finetune_epochs,
                        kd_features=kind,
                    )
                    _, _, pm = prune_network(
                        baseline,
                        space,
                        reseeded(data.train, seed),
                        data.val,
                        data.test,
                        pconf,
                        baseline_acc=baseline_acc,
                        progress=False,
                    )
                    acc, val_acc, macs_ratio = (
                        pm["pruned_acc"],
                        pm["pruned_val_acc"],
                        pm["macs_ratio"],
                    )
                row = {
                    "space": SPACE,
                    "target": TARGET,
                    "arm": arm,
                    "seed": seed,
                    "kd_features": kind,
                    "kd_feature_weight": nas.SearchConfig().kd_feature_weight,
                    "acc": acc,
                    "val_acc": val_acc,
                    "macs_ratio": macs_ratio,
                    "epochs": args.finetune_epochs,
                    "seconds": round(time.perf_counter() - start, 1),
                    "baseline_acc": baseline_acc,
                    **provenance(args.threads),
                }
                rows.append(row)
                append_row(results, row)
                print(
                    f"{arm} seed {seed} kd-features {kind}: {acc:.2f} % (val {val_acc:.2f})",
                    flush=True,
                )


def report(rows: list[dict[str, Any]]) -> str:
    """Per arm, kernel - logits paired by seed on test and validation."""
    out = [
        "| arm | seeds | logits only % | + kernel features % | kernel - logits, test (mean +- SE) "
        "| 95 % CI | per seed | kernel - logits, validation |",
        "| --- " * 8 + "|",
    ]
    for arm in ARMS:
        by = {(r["seed"], r["kd_features"]): r for r in rows if r["arm"] == arm}
        seeds = sorted({s for s, k in by if (s, "none") in by and (s, "kernel") in by})
        if not seeds:
            continue
        d = [by[s, "kernel"]["acc"] - by[s, "none"]["acc"] for s in seeds]
        dv = [by[s, "kernel"]["val_acc"] - by[s, "none"]["val_acc"] for s in seeds]
        mean, se, lo, hi = t_interval(d)
        vmean, vse, _, _ = t_interval(dv)
        out.append(
            f"| {arm} | {len(seeds)} | {statistics.fmean(by[s, 'none']['acc'] for s in seeds):.2f} "
            f"| {statistics.fmean(by[s, 'kernel']['acc'] for s in seeds):.2f} | **{mean:+.2f}** "
            f"+- {se:.2f} | [{lo:+.2f}, {hi:+.2f}] | {', '.join(f'{x:+.2f}' for x in d)} | "
            f"{vmean:+.2f} +- {vse:.2f} |"
        )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
