"""Does the width search find better networks than uniform width at the same MACs?

On ``digits`` with ResNet-20 (space ``resnet20``), per seed (default 0, 1, 2):

1. the full baseline is trained once, as ``nas search`` trains it (30 epochs, lr 0.1, the same
   data options and seed);
2. for each MAC target (default 50 % and 25 %): the search (``search_widths`` with
   ``SearchConfig(target_macs=..., seed=seed)``, defaults otherwise) runs on the baseline, the
   found network is extracted and fine-tuned with distillation from the baseline
   (``starting_network`` + ``finetune``) -- the ``nas search`` pipeline, so with the loaders
   reset to their fresh state before each search (as ``nas search`` resets them), the searched
   network is the one ``nas search --target-macs T --seed S`` produces;
3. the main comparison, weight-matched: the uniform-width network of the same MACs
   (``space.uniform_widths_for_macs(target)``) is extracted from the SAME final supernet with
   ``extract_at`` (the same weight history: warm-up and search epochs of weight-sharing training,
   the same channel order, BN statistics recalibrated for its own widths on the same
   calibration batches, exactly as the searched network gets them) and fine-tuned with exactly
   the same config and teacher, starting from the same loader state (both fine-tunes see the
   same batches). The only difference left is the widths;
4. for reference, the old comparison: the uniform network extracted straight from the baseline
   (L1 channel order, no supernet training) and fine-tuned the same way. It differs from the
   searched network in its starting weights as well as in its widths, so it is not the verdict.

Printed: the baseline accuracy, per seed and target the test accuracy of the searched network
and of both uniform networks, the differences and exact MAC ratios (plus search diagnostics: MAC
ratio of the argmax widths before the budget projection, how peaked the width distributions
ended, relaxed vs discrete validation accuracy), then per target the mean and standard deviation
over seeds and a verdict on the weight-matched comparison. Target: the search matches or beats
uniform width, read as "mean difference >= minus one standard error of the mean" (the rule is
fixed before any result; the per-seed differences and spreads are printed with it: with three
seeds it only tells a clear loss from the rest).

    python experiments/benchmarks/search_quality.py            # about 4 minutes on 2 idle cores
    python experiments/benchmarks/search_quality.py --quick    # fewer epochs, about 3 minutes
    python experiments/benchmarks/search_quality.py --seeds 0 --targets 0.5
    python experiments/benchmarks/search_quality.py --threads 1   # on a machine shared with others

On cores shared with other busy processes, two torch threads can make every step ten times slower
(OpenMP threads waiting for each other); ``--threads 1`` avoids that. Accuracies do not depend on
the thread count's timing, only on the seeds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import search_spaces
from nas.data import DataBundle, load_data
from nas.engine import (
    TrainConfig,
    evaluate,
    loader_states,
    restore_loaders,
    seed_everything,
    train_model,
)
from nas.extraction import extract
from nas.importance import channel_order
from nas.supernet import extract_at
from nas.width_search import SearchConfig, SearchOutcome, finetune, search_widths, starting_network
from search_spaces import SearchSpace

DATASET = "digits"
SPACE = "resnet20"
SEEDS = (0, 1, 2)
TARGETS = (0.5, 0.25)
BASELINE_EPOCHS = 30  # nas search's --baseline-epochs / --baseline-lr defaults
BASELINE_LR = 0.1
QUICK = {"baseline_epochs": 10, "warmup_epochs": 3, "search_epochs": 6, "finetune_epochs": 10}


@dataclass
class Result:
    seed: int
    target: float
    searched_acc: float
    uniform_acc: float  # uniform widths from the same final supernet (weight-matched)
    uniform_base_acc: float  # uniform widths straight from the baseline (reference)
    searched_macs: int
    uniform_macs: int
    full_macs: int
    searched_widths: list[int]
    uniform_widths: list[int]
    argmax_macs_ratio: float
    mean_max_prob: float
    relaxed_val_acc: float
    discrete_val_acc: float
    search_s: float
    finetune_s: float

    @property
    def diff(self) -> float:
        """Searched minus weight-matched uniform: the comparison the verdict is on."""
        return self.searched_acc - self.uniform_acc

    @property
    def diff_base(self) -> float:
        return self.searched_acc - self.uniform_base_acc


def train_baseline(
    space: SearchSpace, data: DataBundle, seed: int, epochs: int
) -> tuple[nn.Module, float]:
    """The full network as ``nas search`` trains it (``nas.workflows.train_full``, no files)."""
    config = TrainConfig(epochs=epochs, lr=BASELINE_LR, seed=seed)
    seed_everything(config.seed)
    model = space.build()
    train_model(model, data.train, config=config, val_loader=data.val, progress=False)
    model.eval()
    return model, evaluate(model, data.test).accuracy


def run_target(
    seed: int,
    target: float,
    space: SearchSpace,
    data: DataBundle,
    baseline: nn.Module,
    overrides: dict[str, Any],
) -> Result:
    config = replace(SearchConfig(target_macs=f"{target:g}", seed=seed), **overrides)
    assert data.val is not None
    start = time.perf_counter()
    outcome = search_widths(baseline, space, data.train, data.val, config=config, progress=False)
    search_s = time.perf_counter() - start

    before_finetune = loader_states(data)
    start = time.perf_counter()
    searched = starting_network(outcome, config)  # extract_at: supernet weights, BN recalibrated
    # the baseline is the teacher as it is: train_model runs a teacher in eval mode under
    # no_grad and leaves it unchanged, so the three fine-tunes below share it
    finetune(searched, baseline, data.train, data.val, config=config, progress=False)
    finetune_s = time.perf_counter() - start

    # weight-matched: the same supernet, calibration batches, fine-tuning config and batches
    restore_loaders(data, before_finetune)
    uniform_spec = space.spec(space.uniform_widths_for_macs(target, config.width_multiple))
    uniform = extract_at(outcome.supernet, uniform_spec, outcome.calibration)
    finetune(uniform, baseline, data.train, data.val, config=config, progress=False)

    # reference: uniform widths straight from the baseline (other starting weights)
    restore_loaders(data, before_finetune)
    uniform_base = extract(baseline, uniform_spec, channel_order(baseline, space, "l1"))
    finetune(uniform_base, baseline, data.train, data.val, config=config, progress=False)

    units = [u.name for u in space.units]
    return Result(
        seed=seed,
        target=target,
        searched_acc=evaluate(searched, data.test).accuracy,
        uniform_acc=evaluate(uniform, data.test).accuracy,
        uniform_base_acc=evaluate(uniform_base, data.test).accuracy,
        searched_macs=outcome.spec.macs(),
        uniform_macs=uniform_spec.macs(),
        full_macs=space.macs(),
        searched_widths=[outcome.spec.widths[u] for u in units],
        uniform_widths=[uniform_spec.widths[u] for u in units],
        argmax_macs_ratio=space.macs(outcome.argmax_widths) / space.macs(),
        mean_max_prob=_mean_max_prob(outcome),
        relaxed_val_acc=outcome.relaxed_acc,
        discrete_val_acc=outcome.discrete_acc,
        search_s=search_s,
        finetune_s=finetune_s,
    )


def _mean_max_prob(outcome: SearchOutcome) -> float:
    """Mean over units of the largest width probability (1 / #choices = logits never moved)."""
    probs = [
        float(F.softmax(lp, dim=-1).max()) for lp in outcome.strategy.choice_log_probs().values()
    ]
    return sum(probs) / len(probs)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="default 0 1 2")
    parser.add_argument(
        "--targets",
        type=float,
        nargs="+",
        default=list(TARGETS),
        help="MAC ratios; default 0.5 0.25",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer epochs: baseline 10, search warm-up 3 + 6, fine-tune 10 (a smoke test)",
    )
    parser.add_argument("--baseline-epochs", type=int, default=None, help="default 30")
    parser.add_argument("--warmup-epochs", type=int, default=None, help="search warm-up epochs")
    parser.add_argument("--search-epochs", type=int, default=None)
    parser.add_argument("--finetune-epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs: dict[str, int] = dict(QUICK) if args.quick else {}
    for key in ("baseline_epochs", "warmup_epochs", "search_epochs", "finetune_epochs"):
        if getattr(args, key) is not None:
            epochs[key] = getattr(args, key)
    baseline_epochs = epochs.pop("baseline_epochs", BASELINE_EPOCHS)
    d = SearchConfig()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; {SPACE} on {DATASET}; "
        f"seeds {args.seeds}; targets {args.targets}\n"
        f"baseline {baseline_epochs} epochs lr {BASELINE_LR}; search warm-up "
        f"{epochs.get('warmup_epochs', d.warmup_epochs)} + "
        f"{epochs.get('search_epochs', d.search_epochs)} epochs; all three fine-tunes "
        f"{epochs.get('finetune_epochs', d.finetune_epochs)} epochs lr {d.finetune_lr}, "
        f"KD alpha {d.kd_alpha} T {d.kd_temperature} from the baseline; test accuracy in %",
        flush=True,
    )
    start_all = time.perf_counter()
    results: list[Result] = []
    baselines: list[float] = []
    for seed in args.seeds:
        data = load_data(DATASET, seed=seed)  # nas search's data defaults
        space = search_spaces.create(
            SPACE,
            num_classes=data.num_classes,
            in_channels=data.in_channels,
            input_size=data.input_size,
        )
        fresh = loader_states(data)
        start = time.perf_counter()
        baseline, base_acc = train_baseline(space, data, seed, baseline_epochs)
        baselines.append(base_acc)
        print(
            f"\nseed {seed}: baseline {base_acc:.2f} % at {space.macs():,} MACs "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
        for target in args.targets:
            restore_loaders(data, fresh)  # each search starts as nas search starts it
            r = run_target(seed, target, space, data, baseline, epochs)
            results.append(r)
            print(
                f"  target {target:g}: searched {r.searched_acc:.2f} % "
                f"(MACs {r.searched_macs / r.full_macs:.4f}) | uniform from the same supernet "
                f"{r.uniform_acc:.2f} % (MACs {r.uniform_macs / r.full_macs:.4f}), diff "
                f"{r.diff:+.2f} points | uniform from the baseline {r.uniform_base_acc:.2f} %, "
                f"diff {r.diff_base:+.2f}  [search {r.search_s:.0f} s, fine-tune "
                f"{r.finetune_s:.0f} s]\n"
                f"    widths searched {r.searched_widths}  uniform {r.uniform_widths}\n"
                f"    search: argmax MACs before projection {r.argmax_macs_ratio:.3f}, "
                f"mean max width prob {r.mean_max_prob:.2f} (1/#choices = "
                f"{1 / len(d.width_ratios):.2f}: logits unmoved), val acc relaxed "
                f"{r.relaxed_val_acc:.1f} / discrete {r.discrete_val_acc:.1f}",
                flush=True,
            )

    b_mean, b_std = mean_std(baselines)
    print(
        f"\nbaseline (full, 100 % MACs): {b_mean:.2f} ± {b_std:.2f} % over {len(baselines)} seeds"
    )
    print(
        "uniform A = uniform widths extracted from the same final supernet as the searched "
        "network (weight-matched, BN recalibrated): the comparison the verdict is on\n"
        "uniform B = uniform widths extracted from the baseline (reference only: other starting "
        "weights as well as other widths)"
    )
    header = (
        f"{'target':>6} {'searched %':>14} {'uniform A %':>14} {'diff A':>14} "
        f"{'uniform B %':>14} {'diff B':>14} {'MACs searched':>20} {'MACs uniform':>13}"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for target in args.targets:
        rs = [r for r in results if r.target == target]
        s_mean, s_std = mean_std([r.searched_acc for r in rs])
        u_mean, u_std = mean_std([r.uniform_acc for r in rs])
        ub_mean, ub_std = mean_std([r.uniform_base_acc for r in rs])
        d_mean, d_std = mean_std([r.diff for r in rs])
        db_mean, db_std = mean_std([r.diff_base for r in rs])
        s_macs = [r.searched_macs / r.full_macs for r in rs]
        u_macs = {r.uniform_macs / r.full_macs for r in rs}
        print(
            f"{target:>6g} {s_mean:>6.2f} ± {s_std:<5.2f} {u_mean:>6.2f} ± {u_std:<5.2f} "
            f"{d_mean:>+6.2f} ± {d_std:<5.2f} {ub_mean:>6.2f} ± {ub_std:<5.2f} "
            f"{db_mean:>+6.2f} ± {db_std:<5.2f} {min(s_macs):>9.4f}..{max(s_macs):<9.4f} "
            f"{', '.join(f'{m:.4f}' for m in sorted(u_macs)):>13}"
        )
        verdicts.append(_verdict(target, [r.diff for r in rs]))
    print(
        "± = standard deviation over seeds; diff = searched minus uniform, in points; "
        "MAC ratios exact (analytic count)"
    )
    print()
    print("\n".join(verdicts))
    print(f"total {time.perf_counter() - start_all:.0f} s")


def _verdict(target: float, diffs: Sequence[float]) -> str:
    """The fixed rule (mean difference >= minus one standard error), with everything it rests
    on: the per-seed differences, their spread and how many seeds the search won."""
    mean, std = mean_std(diffs)
    sem = std / math.sqrt(len(diffs))
    wins = sum(d > 0 for d in diffs)
    if len(diffs) > 1:
        spread = f"std {std:.2f} over {len(diffs)} seeds, standard error {sem:.2f}"
    else:
        spread = "one seed: no spread, so the rule is just mean >= 0"
    met = mean >= -sem
    outcome = "search matches or beats uniform width" if met else "search is behind uniform width"
    if len(diffs) > 1 and abs(mean) < 2 * sem:
        outcome += " (the difference is within two standard errors of zero)"
    return (
        f"target {target:g} MACs, searched vs uniform width from the same supernet: per-seed "
        f"diffs {', '.join(f'{d:+.2f}' for d in diffs)} points; mean {mean:+.2f} ({spread}); "
        f"searched better in {wins}/{len(diffs)} seeds\n"
        f"  rule mean >= -{sem:.2f}: {'met' if met else 'not met'} -> {outcome}"
    )


if __name__ == "__main__":
    main()
