"""Does a MAC reduction turn into a real CPU speed-up? Extracted networks against the full one.

For ResNet-56 (32x32; option A, where only block-internal convs shrink, and option B, where the
residual streams shrink too) and torchvision ResNet-50 (224x224), at batch 1 and 16, the
full network and uniform-width networks extracted at 0.75 / 0.5 / 0.25 of its MACs are timed side
by side in one process (interleaved rounds, median of each). Uniform widths come in two kinds:
``exact`` (every unit at the same ratio of its width, rounded to a channel) and ``x8`` (rounded to
multiples of 8, as ``nas search --width-multiple 8`` chooses them). Printed per row: the exact MAC
ratio, the measured latency ratio against the full network, and latency ratio / MAC ratio
(1.0 = the speed-up is exactly the MAC reduction). Target: at 0.5 MACs and batch 16 the latency
ratio is at most 1.2 x the MAC ratio.

    python experiments/benchmarks/extract_speed.py               # about 10 minutes on 2 cores
    python experiments/benchmarks/extract_speed.py --budget 5    # shorter, noisier
    python experiments/benchmarks/extract_speed.py --spaces resnet56_b
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import search_spaces
from nas.extraction import extract, to_torchscript
from nas.importance import channel_order

SIZES = {"resnet56": (32, 32), "resnet56_b": (32, 32), "resnet50": (224, 224)}
MAC_RATIOS = (0.75, 0.5, 0.25)
MULTIPLES = {"exact": 1, "x8": 8}
BATCHES = (1, 16)
TARGET_RATIO = 0.5
TARGET_BATCH = 16
TARGET_FACTOR = 1.2
Key = tuple[str, float]  # (kind of uniform widths, MAC ratio)
FULL: Key = ("full", 1.0)


def time_once(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    start = time.perf_counter()
    model(x)
    return time.perf_counter() - start


def bench_space(name: str, size: tuple[int, int], budget_s: float) -> list[dict[str, Any]]:
    space = search_spaces.create(name, input_size=size)
    torch.manual_seed(0)
    full = space.build().eval()
    order = channel_order(full, space)
    eager: dict[Key, nn.Module] = {FULL: full}
    ratios: dict[Key, float] = {FULL: 1.0}
    for kind, multiple in MULTIPLES.items():
        for r in MAC_RATIOS:
            spec = space.spec(space.uniform_widths_for_macs(r, multiple))
            eager[kind, r] = extract(full, spec, order).eval()
            ratios[kind, r] = spec.macs_ratio()
    forms: dict[str, dict[Key, Any]] = {
        "eager": eager,
        "model.ts": {k: to_torchscript(m) for k, m in eager.items()},
    }
    rows = []
    for batch in BATCHES:
        x = torch.randn(batch, 3, *size)
        for form, models in forms.items():
            times = _interleaved(models, x, budget_s)
            base = statistics.median(times[FULL])
            for key in eager:
                if key == FULL:
                    continue
                lat = statistics.median(times[key])
                rows.append(
                    {
                        "space": name,
                        "form": form,
                        "widths": key[0],
                        "batch": batch,
                        "target": key[1],
                        "macs_ratio": ratios[key],
                        "full_ms": base * 1e3,
                        "ms": lat * 1e3,
                        "latency_ratio": lat / base,
                        "rounds": len(times[key]),
                    }
                )
    return rows


def _interleaved(
    models: dict[Key, Any], x: torch.Tensor, budget_s: float
) -> dict[Key, list[float]]:
    """Median-ready timings: warm-up, then rounds in which every model runs once in turn (so all
    see the same machine state), as many as fit in ``budget_s`` (5 to 500)."""
    times: dict[Key, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            for _ in range(2):
                m(x)
        one_round = sum(time_once(m, x) for m in models.values())
        for _ in range(max(5, min(500, int(budget_s / one_round)))):
            for k, m in models.items():
                times[k].append(time_once(m, x))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="seconds of timing per (network, batch, form); default 20",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--spaces", nargs="+", choices=list(SIZES), default=list(SIZES), help="default: all"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; medians of "
        "interleaved rounds; eager = nn.Module, model.ts = the saved frozen TorchScript"
    )
    header = (
        f"{'space':<10} {'form':<8} {'widths':<6} {'batch':>5} {'MAC ratio':>9} {'full ms':>8} "
        f"{'ms':>8} "
        f"{'latency ratio':>13} {'lat/MAC':>7}"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for name in args.spaces:
        for row in bench_space(name, SIZES[name], args.budget):
            factor = row["latency_ratio"] / row["macs_ratio"]
            print(
                f"{row['space']:<10} {row['form']:<8} {row['widths']:<6} {row['batch']:>5} "
                f"{row['macs_ratio']:>9.3f} {row['full_ms']:>8.2f} {row['ms']:>8.2f} "
                f"{row['latency_ratio']:>13.3f} {factor:>7.2f}",
                flush=True,
            )
            if row["target"] == TARGET_RATIO and row["batch"] == TARGET_BATCH:
                verdicts.append((f"{name} {row['form']} {row['widths']} widths", factor))
    for name, factor in verdicts:
        status = "met" if factor <= TARGET_FACTOR else "MISSED"
        print(
            f"target {name} @ {TARGET_RATIO} MACs, batch {TARGET_BATCH}: latency ratio "
            f"{factor:.2f} x MAC ratio (<= {TARGET_FACTOR}): {status}"
        )


if __name__ == "__main__":
    main()
