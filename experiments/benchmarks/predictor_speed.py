"""How fast the GCN predictor trains and ranks, on the CPU.

For ResNet-20, ResNet-56 (option B) and torchvision ResNet-50, with random width assignments
over the default choices: the time to fit the predictor on ``--samples`` scored sub-networks
(``--epochs`` epochs, the defaults of ``nas rank``), and the prediction throughput in
architectures per second over a pool of ``--pool`` candidates (graph features + GCN forward,
median of several passes). Target: >= 10,000 architectures per second.

    python experiments/benchmarks/predictor_speed.py
    python experiments/benchmarks/predictor_speed.py --samples 200 --pool 20000
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import search_spaces
from nas.ranking import sample_widths
from nas.supernet import DEFAULT_WIDTH_RATIOS, width_choices
from predictors import GraphEncoder, PredictorConfig, fit_predictor

SPACES = (("resnet20", (32, 32)), ("resnet56_b", (32, 32)), ("resnet50", (224, 224)))
TARGET = 10_000


def bench(
    name: str, size: tuple[int, int], samples: int, pool: int, epochs: int, rounds: int
) -> tuple[int, float, float]:
    space = search_spaces.create(name, input_size=size)
    encoder = GraphEncoder.for_space(space)
    choices = {u.name: width_choices(u.max_width, DEFAULT_WIDTH_RATIOS) for u in space.units}
    gen = torch.Generator().manual_seed(0)
    train = sample_widths(encoder, choices, samples, gen)
    scores = encoder.macs(train).double().log() + torch.randn(samples, generator=gen) * 0.1
    start = time.perf_counter()
    predictor = fit_predictor(encoder, train, scores.float(), PredictorConfig(epochs=epochs))
    fit_seconds = time.perf_counter() - start
    candidates = sample_widths(encoder, choices, pool, gen)
    predictor.predict(candidates[:256])  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        predictor.predict(candidates)
        times.append(time.perf_counter() - start)
    return encoder.num_nodes, fit_seconds, pool / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="training sub-networks")
    parser.add_argument("--epochs", type=int, default=200, help="predictor training epochs")
    parser.add_argument("--pool", type=int, default=10_000, help="candidates predicted")
    parser.add_argument("--rounds", type=int, default=5, help="timed prediction passes")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; fit on "
        f"{args.samples} sub-networks x {args.epochs} epochs; predict {args.pool:,} candidates"
    )
    print(f"{'space':<11} {'nodes':>5} {'fit s':>7} {'archs/s':>10}  target >= {TARGET:,}")
    for name, size in SPACES:
        nodes, fit_s, rate = bench(name, size, args.samples, args.pool, args.epochs, args.rounds)
        status = "met" if rate >= TARGET else "MISSED"
        print(f"{name:<11} {nodes:>5} {fit_s:>7.1f} {rate:>10,.0f}  {status}", flush=True)


if __name__ == "__main__":
    main()
