"""One network on the four runtimes it ships for, side by side: eager PyTorch, TorchScript
(``model.ts``), ``torch.export`` (``model.pt2``) and ONNX Runtime (``model.onnx``), at batch 1 and
16, for resnet56 at full width and a width-searched network at 50 % MACs; latency and latency
per MAC for each, and which runtime is fastest here.

Every latency is the median of interleaved rounds (:func:`nas.cost.timing.median_ms`: the four
runtimes of one network and batch share each round, in a shuffled order), on the CPU with
``--threads`` threads (ONNX Runtime: as many intra-op threads, one inter-op). Needs the onnx
extra (``pip install -e ".[onnx]"``).

    python experiments/benchmarks/runtimes.py --arch runs/r56-search/arch.json --threads 2

``--arch``: the searched network's ``arch.json`` (any task: its widths are rebuilt at 3x32x32,
10 classes); without it, a short search is run on the embedded digits data to get one.
"""

from __future__ import annotations

import argparse
import io
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

import search_spaces
from nas.cost.runtime import network_runner
from nas.cost.timing import median_ms
from nas.engine.config import torch_threads
from nas.extraction import to_torchscript
from nas.extraction.onnx_export import require_onnx

SPACE = "resnet56"
BATCHES = (1, 16)
RUNTIMES = ("eager", "TorchScript", "torch.export", "ONNX Runtime")


def searched_widths(arch: str | None) -> dict[str, int]:
    """The widths of ``arch``, or of a short MAC-constrained search at 50 % on digits."""
    if arch is None:
        out = Path(tempfile.mkdtemp()) / "search"
        cmd = [sys.executable, "-m", "nas", "search", "--space", SPACE, "--target-macs", "0.5"]
        cmd += ["--baseline-epochs", "2", "--warmup-epochs", "1", "--search-epochs", "3"]
        cmd += ["--finetune-epochs", "1", "--quiet", "--out", str(out)]
        subprocess.run(cmd, check=True)
        arch = str(out / "arch.json")
    return dict(search_spaces.WidthSpec.load(arch).widths)


def calls(model: torch.nn.Module, x: torch.Tensor, threads: int) -> list[Any]:
    """The network on each runtime, as a callable on ``x``."""
    model = model.eval()
    scripted = to_torchscript(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        example = torch.randn(2, *x.shape[1:])  # (a batch of 1 would specialise the batch)
        program = torch.export.export(
            model, (example,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},), strict=False
        )
    buf = io.BytesIO()
    torch.export.save(program, buf)
    exported = torch.export.load(io.BytesIO(buf.getvalue())).module()
    ort = network_runner(
        model, x, backend="onnxruntime", device=torch.device("cpu"), threads=threads
    )
    return [lambda: model(x), lambda: scripted(x), lambda: exported(x), ort]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", help="the searched network's arch.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    require_onnx()
    space = search_spaces.create(SPACE, num_classes=10, in_channels=3, input_size=(32, 32))
    widths = searched_widths(args.arch)
    networks = {"resnet56 (full)": space.full_widths(), "searched @ 50 % MACs": widths}
    print(
        f"# runtimes: {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"torch {torch.__version__}\n"
    )
    print("| network | MACs | batch | runtime | latency ms | ms per G MACs | vs eager |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with torch_threads(args.threads):
        for label, w in networks.items():
            macs = space.macs(w)
            for batch in BATCHES:
                torch.manual_seed(0)
                model = space.build(w)
                x = torch.randn(batch, 3, 32, 32)
                runs = calls(model, x, args.threads)  # median_ms runs them in inference mode
                ms = median_ms(runs, device=torch.device("cpu"), rounds=args.rounds, seed=batch)
                best = min(range(len(ms)), key=ms.__getitem__)
                for i, name in enumerate(RUNTIMES):
                    per_gmac = ms[i] / (macs * batch / 1e9)
                    mark = "**" if i == best else ""
                    print(
                        f"| {label} | {macs / 1e6:.1f} M | {batch} | {name} | {mark}{ms[i]:.3f}"
                        f"{mark} | {per_gmac:.2f} | {ms[i] / ms[0]:.2f} |"
                    )


if __name__ == "__main__":
    main()
