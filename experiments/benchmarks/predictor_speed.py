"""How fast the GCN predictor trains and ranks, on the CPU.

For ResNet-20, ResNet-56 (option B) and torchvision ResNet-50, with the default width choices:

* ``fit s``: fitting the predictor on ``--samples`` scored sub-networks (``--epochs`` epochs, the
  defaults of ``nas rank``);
* ``archs/s``: prediction throughput (graph features + GCN forward) over ``--pool`` uniformly
  drawn candidates, median of ``--rounds`` passes. Target: >= 10,000 architectures per second;
* ``pool s``: building the pool the selection really ranks, up to ``--pool`` distinct candidates
  with exact MACs in ``[target * (1 - tolerance), target]`` (``nas.ranking.sample_pool``);
* ``rank s``: the whole ranking step of ``nas rank`` / ``nas search --select predictor``: that
  pool, its encoding and the prediction (``sample_pool`` + ``Predictor.predict``), median of
  ``--rounds`` passes. This is the number behind "10,000 candidates ranked in about a second".

    python experiments/benchmarks/predictor_speed.py
    python experiments/benchmarks/predictor_speed.py --samples 200 --pool 20000 --target 0.3
    python experiments/benchmarks/predictor_speed.py --samples 20 --epochs 2 --pool 500 \\
        --rounds 1   # smoke run: checks that it works, the timings mean nothing
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import search_spaces
from nas.selection import RankConfig, sample_pool, sample_widths
from nas.width_search import SearchConfig
from nas.width_search.setup import width_choices
from predictors import GraphEncoder, Predictor, PredictorConfig, fit_predictor

SPACES = (("resnet20", (32, 32)), ("resnet56_b", (32, 32)), ("resnet50", (224, 224)))
TARGET = 10_000


def bench(
    name: str,
    size: tuple[int, int],
    args: argparse.Namespace,
) -> dict[str, float]:
    space = search_spaces.create(name, input_size=size)
    encoder = GraphEncoder.for_space(space)
    choices = width_choices(SearchConfig(), space)
    gen = torch.Generator().manual_seed(0)
    train = sample_widths(encoder, choices, args.samples, gen)
    scores = encoder.macs(train).double().log() + torch.randn(len(train), generator=gen) * 0.1
    start = time.perf_counter()
    predictor = fit_predictor(encoder, train, scores.float(), PredictorConfig(epochs=args.epochs))
    fit_seconds = time.perf_counter() - start

    candidates = sample_widths(encoder, choices, args.pool, gen)
    predictor.predict(candidates[:256])  # warm-up
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        predictor.predict(candidates)
        times.append(time.perf_counter() - start)

    target = args.target * space.macs()
    config = RankConfig(pool=args.pool, top_k=1)
    pool_times, rank_times, found = [], [], 0
    for _ in range(args.rounds):
        pool_s, rank_s, found = _rank_pool(predictor, choices, target, args.tolerance, config)
        pool_times.append(pool_s)
        rank_times.append(rank_s)
    return {
        "nodes": encoder.num_nodes,
        "fit": fit_seconds,
        "rate": len(candidates) / statistics.median(times),
        "pool": statistics.median(pool_times),
        "rank": statistics.median(rank_times),
        "found": found,
    }


def _rank_pool(
    predictor: Predictor,
    choices: dict[str, list[int]],
    target: float,
    tolerance: float,
    config: RankConfig,
) -> tuple[float, float, int]:
    """Seconds to build the within-budget pool, seconds for pool + encoding + prediction, and
    the pool's size: what ``select_with_predictor`` does before fine-tuning the top-k."""
    start = time.perf_counter()
    pool = sample_pool(predictor.encoder, choices, target, tolerance, config)
    built = time.perf_counter() - start
    predictor.predict(pool)
    return built, time.perf_counter() - start, len(pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="training sub-networks")
    parser.add_argument("--epochs", type=int, default=200, help="predictor training epochs")
    parser.add_argument("--pool", type=int, default=10_000, help="candidates predicted")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes")
    parser.add_argument("--target", type=float, default=0.5, help="MAC budget, ratio of full")
    parser.add_argument("--tolerance", type=float, default=0.02, help="pool band under it")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; fit on "
        f"{args.samples} sub-networks x {args.epochs} epochs; predict {args.pool:,} candidates; "
        f"pool within {args.tolerance:.0%} under {args.target:.0%} of the MACs"
    )
    print(
        f"{'space':<11} {'nodes':>5} {'fit s':>7} {'archs/s':>10} {'pool s':>7} {'rank s':>7} "
        f"{'pool':>7}  target >= {TARGET:,} archs/s"
    )
    for name, size in SPACES:
        r = bench(name, size, args)
        status = "met" if r["rate"] >= TARGET else "MISSED"
        print(
            f"{name:<11} {r['nodes']:>5} {r['fit']:>7.1f} {r['rate']:>10,.0f} {r['pool']:>7.2f} "
            f"{r['rank']:>7.2f} {r['found']:>7,}  {status}",
            flush=True,
        )


if __name__ == "__main__":
    main()
