"""How fast traced spaces are: finding the units, counting MACs, extracting, loading.

For each torchvision model: the units, frozen groups and granularities tracing finds, the time to
find them (trace in both modes, shapes, rules, the FlopCounterMode guard; torchvision imported
beforehand), one ``space.macs(widths)`` call, a 4096-row ``batched_macs``, extracting a network
at half width from the full one, and ``load_model`` of the saved result (re-tracing included).

    python experiments/benchmarks/traced_speed.py [--size 32] [--models mobilenet_v2 ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torchvision  # noqa: F401  (imported before any timing)

import search_spaces
from nas.extraction import extract
from nas.extraction.saving import load_model, save_model
from search_spaces.space import _create

MODELS = (
    "mobilenet_v2",
    "mobilenet_v3_small",
    "shufflenet_v2_x0_5",
    "efficientnet_b0",
    "mnasnet0_5",
    "regnet_x_400mf",
    "vgg11_bn",
    "densenet121",
    "squeezenet1_1",
    "resnet18",
    "resnext50_32x4d",
)


def seconds(fn: object, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--size", type=int, default=32, help="input size (pixels)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        "| model | units | frozen groups | granularities | discovery s | macs() us "
        "| batched_macs(4096) ms | extract s | load_model s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.models:
        full_name = f"torchvision:{name}"
        _create.cache_clear()
        start = time.perf_counter()
        space = search_spaces.create(full_name, num_classes=10, input_size=(args.size,) * 2)
        found = time.perf_counter() - start
        widths = space.uniform_widths(0.5)
        macs_us = 1e6 * seconds(lambda: space.macs(widths), 200)  # noqa: B023
        batch = torch.tensor([[widths[u.name] for u in space.units]] * 4096)
        batched_ms = 1e3 * seconds(lambda: space.batched_macs(batch), 5)  # noqa: B023
        model = space.build().eval()
        spec = space.spec(widths)
        start = time.perf_counter()
        small = extract(model, spec)
        extract_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            save_model(small, spec, Path(tmp), torchscript=False)
            _create.cache_clear()
            load_s = seconds(lambda: load_model(tmp))
        frozen = [g for g in space.frozen if g.reason != "network output"]
        grains = ", ".join(str(g) for g in sorted({u.granularity for u in space.units}))
        print(
            f"| {name} | {len(space.units)} | {len(frozen)} | {grains} | {found:.2f} "
            f"| {macs_us:.0f} | {batched_ms:.1f} | {extract_s:.2f} | {load_s:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
