"""How fast are candidates scored on a supernet? Candidates per minute, side by side.

A chooser (``--select evolution|greedy|predictor``) scores each candidate width assignment with
the supernet's weights after recomputing its BatchNorm statistics on ``--calib-images``
training images, by its loss and accuracy on the validation split. Two ways to do it, timed in
interleaved rounds on the same candidates (distinct, MACs in a band around each budget):

* ``extracted`` (what :class:`nas.selection.CandidateScorer` does): the candidate's network is
  sliced out of the supernet (physically smaller) and run channels-last;
* ``masked``: the full-width supernet with the candidate's channel masks (what scoring cost
  before), which computes the same numbers at full-width cost.

Printed: per space and budget, candidates per minute of each and their ratio (target: at least
100 ResNet-20 candidates a minute on 2 cores at 32x32).

    python experiments/benchmarks/candidate_scoring.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import nas
from nas.engine import evaluate
from nas.selection import CandidateScorer, sample_widths
from nas.selection.sampler import as_dict
from nas.supernet import Supernet, recalibrate_bn, width_choices
from nas.width_search import DEFAULT_WIDTH_RATIOS
from predictors import GraphEncoder


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--spaces", nargs="+", default=["resnet20", "resnet20_b"])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--calib-images", type=int, default=2000)
    parser.add_argument("--val-images", type=int, default=508, help="cifar10-5k's validation")
    parser.add_argument("--batch", type=int, default=128, help="the loader's batch size")
    parser.add_argument("--candidates", type=int, default=12, help="per space, budget, way")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        x = torch.randn(n, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (n,), generator=g)
        return [(x[i : i + args.batch], y[i : i + args.batch]) for i in range(0, n, args.batch)]

    calibration, val = images(args.calib_images), images(args.val_images)
    print(
        f"{args.calib_images} calibration + {args.val_images} validation images, batch "
        f"{args.batch}, {args.threads} threads"
    )
    print("| space | budget | extracted / min | masked / min | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name in args.spaces:
        space = nas.create_space(name, num_classes=10, in_channels=3, input_size=(32, 32))
        supernet = Supernet(space.build().eval(), space)
        encoder = GraphEncoder.for_space(space)
        choices = {u.name: width_choices(u.max_width, DEFAULT_WIDTH_RATIOS) for u in space.units}
        for budget in args.budgets:
            target = budget * space.macs()
            rows = sample_widths(
                encoder, choices, 2 * args.candidates, g, band=(0.9 * target, 1.1 * target)
            )
            candidates = [as_dict(encoder, r) for r in rows]
            if len(candidates) < 2 * args.candidates:
                print(
                    f"error: only {len(candidates)} distinct candidates of {name} lie within 10 % "
                    f"of {budget:.0%} of the MACs; ask for fewer (--candidates)",
                    file=sys.stderr,
                )
                raise SystemExit(2)
            scorer = CandidateScorer(supernet, calibration, val, "cpu")
            fast: list[float] = []
            slow: list[float] = []
            for i, widths in enumerate(candidates[: args.candidates]):
                t = time.perf_counter()
                scorer.score(widths)
                fast.append(time.perf_counter() - t)
                masked = candidates[args.candidates + i]  # another candidate: no cache
                t = time.perf_counter()
                with torch.no_grad():
                    supernet.set_widths(masked)
                    recalibrate_bn(supernet, calibration)
                    evaluate(supernet, val)
                    supernet.set_masks(None)
                slow.append(time.perf_counter() - t)
            per_fast, per_slow = statistics.median(fast), statistics.median(slow)
            print(
                f"| {name} | {budget:.0%} | {60 / per_fast:.0f} | {60 / per_slow:.0f} | "
                f"{per_slow / per_fast:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
