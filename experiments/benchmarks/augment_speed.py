"""Is the batched train augmentation cheap? ``RandomCropFlip`` against a per-image Python loop.

A CIFAR-sized batch (128 x 3 x 32 x 32, padding 4, flips) is augmented by the batched gather
that ``nas`` uses and by the naive loop (pad, slice and flip one image at a time), interleaved,
and the medians are printed with their ratio. Target: the batched version is at least 5 x faster
and takes under 1 % of a full-width ResNet-20 training step on the same batch (also timed here).

    python experiments/benchmarks/augment_speed.py            # about 20 seconds on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import search_spaces
from nas.data import RandomCropFlip

TARGET_SPEEDUP = 5.0
TARGET_SHARE = 0.01


def naive(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """One image at a time: what a per-sample torchvision transform does."""
    out = torch.empty_like(x)
    _, _, h, w = x.shape
    for i in range(x.shape[0]):
        a, b = (int(v) for v in torch.randint(0, 2 * padding + 1, (2,), generator=generator))
        image = F.pad(x[i], (padding, padding, padding, padding))[:, a : a + h, b : b + w]
        out[i] = image.flip(2) if torch.rand(1, generator=generator).item() < 0.5 else image
    return out


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(128, 3, 32, 32)
    y = torch.randint(0, 10, (128,))
    g = torch.Generator().manual_seed(0)
    augment = RandomCropFlip(4, flip=True)
    model = search_spaces.create("resnet20", num_classes=10).build()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    times: dict[str, list[float]] = {"batched": [], "naive": [], "train step": []}
    for _ in range(3):  # warm-up
        augment(x, g)
        naive(x, 4, g)
        step()
    for _ in range(args.rounds):
        times["batched"].append(seconds(lambda: augment(x, g)))
        times["naive"].append(seconds(lambda: naive(x, 4, g)))
        if len(times["train step"]) < 10:
            times["train step"].append(seconds(step))
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, value in med.items():
        print(f"{name:>10}: {value * 1000:8.3f} ms (median)")
    speedup = med["naive"] / med["batched"]
    share = med["batched"] / med["train step"]
    print(f"speed-up batched vs naive: {speedup:.1f} x (target >= {TARGET_SPEEDUP:.0f} x)")
    print(f"batched share of a ResNet-20 train step: {share:.2%} (target < {TARGET_SHARE:.0%})")


if __name__ == "__main__":
    main()
