"""Does the width search find better networks than uniform width at the same MACs, on CIFAR-10?

On real CIFAR-10 images (``cifar10-5k.npz``: 5,085 training and 1,017 test images; see
``experiments/make_cifar_subset.py``), for ``resnet20_b`` (stage widths searchable) and
``resnet20`` (option A: only the block-internal widths), at 50 % and 25 % of the MACs, for
several seeds and search configurations:

1. the full baseline of each space is trained once (``nas search``'s baseline: 30 epochs, lr
   0.1), on the training split of data seed 0 (so every seed's validation split is unseen by it);
2. per seed and configuration, one warm-up of the supernet is shared by both targets (the
   warm-up does not depend on the target: ``nas sweep`` shares it the same way);
3. per target, the search (``nas.width_search.search_widths``) and what ``nas search
   --compare`` delivers (``nas.jobs.search.deliver``): the found network fine-tuned with
   distillation from the baseline, and the **uniform-width network of the same MACs extracted
   from the same final supernet** (BN statistics recalibrated for its widths), fine-tuned with
   exactly the same options, teacher, seed and batches. The only difference is the widths.

Splits: the search trains its weights on one half of the training split and the architecture
on the other; the validation split (10 %) trains neither and serves the relaxed/argmax/delivered
comparison; the **test accuracies are only reported** (nothing here is chosen on them).

Configurations: ``default`` (this release), ``previous`` (the previous release's search: the
TAS budget rule with weight 2 and its 5 % band, relaxed Gumbel samples in the weight steps,
architecture weight decay 1e-3, no crispness term, the greedy projection; run with this
release's data splits, BN handling and architecture-only backward) and ``sandwich`` (this
release with ``--weight-sampling sandwich``).

Printed: per space, target and configuration the test accuracy of the searched and the
uniform network (mean and standard deviation over seeds), the paired difference (mean and
standard error, and per seed), the MAC ratios, the search diagnostics (argmax MACs before the
projection, arch_confidence, projection_shift, relaxation gap); then the targets' verdicts.
Every result is also appended to ``--out/results.jsonl`` as it comes (re-running resumes).

    python experiments/benchmarks/search_quality.py --dataset npz:../shared/data/cifar10-5k.npz
    python experiments/benchmarks/search_quality.py --dataset npz:../shared/data/cifar10-5k.npz \
        --spaces resnet20_b --configs default sandwich --seeds 0 1 2     # hard vs sandwich
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
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
from nas.jobs.search import deliver
from nas.width_search import SearchConfig, search_widths, warm_up
from search_spaces import SearchSpace

SPACES = ("resnet20_b", "resnet20")
TARGETS = (0.5, 0.25)
SEEDS = (0, 1, 2)
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "previous": {
        "budget": "tas",
        "budget_weight": 2.0,
        "budget_band": 0.05,
        "arch_weight_decay": 1e-3,
        "weight_sampling": "relaxed",
        "entropy_weight": 0.0,
        "projection": "greedy",
    },
    "sandwich": {"weight_sampling": "sandwich"},
}
BASELINE_LR = 0.1


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


def run(
    space: SearchSpace,
    data: DataBundle,
    baseline: nn.Module,
    baseline_acc: float,
    config: SearchConfig,
    warmup: Path,
) -> dict[str, Any]:
    """One search at ``config`` and what it delivers with its uniform twin."""
    assert data.val is not None
    fresh = loader_state(data.train)
    start = time.perf_counter()
    outcome = search_widths(
        baseline, space, data.train, data.val, config=config, warmup=warmup, progress=False
    )
    search_s = time.perf_counter() - start
    restore_loader(data.train, fresh)
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
    metrics |= {
        "search_s": round(search_s, 1),
        "finetune_s": round(time.perf_counter() - start, 1),
        "widths": dict(outcome.spec.widths),
    }
    return metrics


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def report(rows: list[dict[str, Any]]) -> None:
    keys = sorted({(r["space"], r["target"], r["config"]) for r in rows}, key=str)
    print()
    print(
        "| space | target | config | seeds | searched % | uniform % | searched - uniform "
        "(mean +- SE) | per seed | MAC ratio searched / uniform | argmax MACs | confidence "
        "| shift |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    verdicts = []
    for space, target, config in keys:
        group = sorted(
            (r for r in rows if (r["space"], r["target"], r["config"]) == (space, target, config)),
            key=lambda r: r["seed"],
        )
        diffs = [r["searched_acc"] - r["uniform_acc"] for r in group]
        d_mean, d_sd = mean_sd(diffs)
        se = d_sd / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
        s_mean, s_sd = mean_sd([r["searched_acc"] for r in group])
        u_mean, u_sd = mean_sd([r["uniform_acc"] for r in group])
        ratios = [r["macs_ratio"] for r in group]
        u_ratios = [r["uniform_macs_ratio"] for r in group]
        print(
            f"| {space} | {target:g} | {config} | {len(group)} | {s_mean:.2f} +- {s_sd:.2f} | "
            f"{u_mean:.2f} +- {u_sd:.2f} | {d_mean:+.2f} +- {se:.2f} | "
            f"{', '.join(f'{d:+.2f}' for d in diffs)} | "
            f"{min(ratios):.3f}-{max(ratios):.3f} / {statistics.fmean(u_ratios):.3f} | "
            f"{statistics.fmean(r['argmax_macs_ratio'] for r in group):.3f} | "
            f"{statistics.fmean(r['arch_confidence'] for r in group):.2f} | "
            f"{statistics.fmean(r['projection_shift'] for r in group):.2f} |"
        )
        if config == "default":
            goal, rule = (1.0, ">= +1.00") if target <= 0.25 else (0.0, ">= 0.00")
            verdicts.append(
                f"target {space} @ {target:g} MACs: searched - uniform {d_mean:+.2f} +- {se:.2f} "
                f"points ({rule}): {'met' if d_mean >= goal else 'MISSED'}"
            )
    print()
    for line in verdicts:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="npz:../shared/data/cifar10-5k.npz")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES))
    parser.add_argument("--targets", type=float, nargs="+", default=list(TARGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--configs", nargs="+", default=["default", "previous"], choices=CONFIGS)
    parser.add_argument("--baseline-epochs", type=int, default=30)
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--search-epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--out", default="runs/search_quality", help="results and caches")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows = (
        [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    )
    done = {(r["space"], r["target"], r["config"], r["seed"]) for r in rows}
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
            space, data, args.baseline_epochs, out / f"baseline-{space_name}.pt"
        )
        baseline_acc = nas.evaluate(baseline, data.test).accuracy
        print(
            f"{space_name}: baseline {baseline_acc:.2f} % ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        for seed in args.seeds:
            # the same splits (data seed 0), the training batches in the order of this seed
            seeded = replace(data, train=reseeded(data.train, seed))
            for name in args.configs:
                todo = [t for t in args.targets if (space_name, t, name, seed) not in done]
                if not todo:
                    continue
                base = SearchConfig(
                    seed=seed,
                    warmup_epochs=args.warmup_epochs,
                    search_epochs=args.search_epochs,
                    finetune_epochs=args.finetune_epochs,
                    compare=True,
                    **CONFIGS[name],
                )
                path = out / f"warmup-{space_name}-{name}-{seed}.pt"
                assert seeded.val is not None
                warm_up(
                    baseline,
                    space,
                    seeded.train,
                    seeded.val,
                    config=base,
                    path=path,
                    progress=False,
                )
                for target in todo:
                    config = replace(base, target_macs=f"{target:g}")
                    m = run(space, seeded, baseline, baseline_acc, config, path)
                    row = {"space": space_name, "target": target, "config": name, "seed": seed, **m}
                    rows.append(row)
                    with results.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(
                        f"{space_name} @ {target:g} {name} seed {seed}: searched "
                        f"{m['searched_acc']:.2f} % ({m['macs_ratio']:.3f}) vs uniform "
                        f"{m['uniform_acc']:.2f} % ({m['uniform_macs_ratio']:.3f}); confidence "
                        f"{m['arch_confidence']:.2f}, shift {m['projection_shift']:.2f}, "
                        f"search {m['search_s']:.0f} s, fine-tune {m['finetune_s']:.0f} s "
                        f"({time.perf_counter() - started:.0f} s in all)",
                        flush=True,
                    )
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    report([r for r in rows if r["space"] in args.spaces and r["config"] in args.configs])


if __name__ == "__main__":
    main()
