"""Does skipping closed channels per input pay on a CPU? The conditional network at batch size 1.

A per-input strategy (``conditional-gumbel``, ``batch-shaping``) delivers a conditional network
(:mod:`nas.gates.deploy`): at batch size 1 each gated block runs its gate network on the block
input and slices its weights to the channels open for that image. Timed side by side in one
process (interleaved rounds, median per network, batch size 1, TorchScript as saved):

* ``dense``: the full network;
* ``conditional``: the gated network, its gates set so that each image opens about ``--open``
  of every gated unit's channels (random gates: latency depends on how many channels are open,
  not on which; ``--run DIR`` times a trained one instead);
* ``static``: the uniform-width network with the conditional network's average MACs per image
  (what a static pruning of the same average cost runs at);
* ``conditional, gates only``: the gated network with every gate open, i.e. the cost of the gate
  networks and of slicing, without any saving.

Printed: each network's median latency, its ratio to ``dense``, and the MAC ratio (per-image
average for the conditional network, measured from the gates that opened).

    python experiments/benchmarks/conditional_latency.py --space resnet20 --open 0.5
    python experiments/benchmarks/conditional_latency.py --run runs/cond   # a --static search
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import search_spaces
from nas.extraction import extract, to_torchscript
from nas.gates import ConditionalGumbel
from nas.gates.conditional import open_shares
from nas.gates.deploy import conditional_network, load_conditional
from nas.supernet import Supernet, width_choices


def scripted(model: torch.nn.Module) -> Any:
    buf = io.BytesIO()
    torch.jit.save(to_torchscript(model), buf)
    buf.seek(0)
    return torch.jit.load(buf)


def synthetic(space_name: str, size: tuple[int, int], open_share: float) -> dict[str, Any]:
    """A random full network with random gates opening about ``open_share`` of each unit."""
    space = search_spaces.create(space_name, input_size=size)
    torch.manual_seed(0)
    full = space.build().eval()
    supernet = Supernet(space.build().eval(), space)
    supernet.model.load_state_dict(full.state_dict())
    choices = {u.name: width_choices(u.max_width, (1.0,)) for u in space.units}
    strategy = ConditionalGumbel(space, choices, init_open=0.5)
    strategy.attach(supernet)
    logit = torch.logit(torch.tensor(open_share)).item()
    lasts: list[torch.nn.Linear] = []
    for net in strategy.nets.values():
        last = list(net.children())[-1]  # the gate network's output layer
        assert isinstance(last, torch.nn.Linear)
        lasts.append(last)
    with torch.no_grad():
        for last in lasts:
            last.weight.normal_(0, 0.5)  # gates that differ between images
            last.bias.fill_(logit)
    strategy.eval()
    images = torch.randn(64, space.in_channels, *size)
    _, macs = open_shares(supernet, strategy, [(images, torch.zeros(64))], torch.device("cpu"))
    model = conditional_network(supernet, strategy)
    with torch.no_grad():
        for last in lasts:
            last.bias.fill_(50.0)
    all_open = conditional_network(supernet, strategy)
    return {
        "space": space,
        "full": full,
        "conditional": model,
        "all_open": all_open,
        "avg_macs_ratio": float(macs.double().mean()) / space.macs(),
        "images": images,
    }


def from_run(run: Path) -> dict[str, Any]:
    model = load_conditional(run / "conditional")
    spec = search_spaces.WidthSpec.load(run / "conditional" / "arch.json")
    space = spec.get_space()
    import json

    metrics = json.loads((run / "metrics.json").read_text())
    full = space.build()
    full.load_state_dict(torch.load(run / "baseline" / "model.pt", weights_only=True))
    return {
        "space": space,
        "full": full.eval(),
        "conditional": model,
        "all_open": None,
        "avg_macs_ratio": float(metrics["avg_macs_ratio"]),
        "images": torch.randn(64, space.in_channels, *space.input_size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="resnet20")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--open", type=float, default=0.5, help="share of channels gates open")
    parser.add_argument("--run", default=None, help="a finished nas search --static run")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size = (args.input_size, args.input_size)
    nets = from_run(Path(args.run)) if args.run else synthetic(args.space, size, args.open)
    space = nets["space"]
    static_spec = space.spec(space.uniform_widths_for_macs(nets["avg_macs_ratio"]))
    static = extract(nets["full"], static_spec).eval()
    models = {
        "dense": scripted(nets["full"]),
        "conditional": scripted(nets["conditional"]),
        "static (same average MACs)": scripted(static),
    }
    if nets["all_open"] is not None:
        models["conditional, gates only (all open)"] = scripted(nets["all_open"])
    macs = {
        "dense": 1.0,
        "conditional": nets["avg_macs_ratio"],
        "static (same average MACs)": static_spec.macs_ratio(),
        "conditional, gates only (all open)": 1.0,
    }
    images = nets["images"]
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.no_grad():
        for model in models.values():  # warm-up (TorchScript profiles its first runs)
            for i in range(5):
                model(images[i : i + 1])
        for r in range(args.rounds):
            for name, model in models.items():
                one = images[r % len(images) : r % len(images) + 1]
                start = time.perf_counter()
                for _ in range(10):
                    model(one)
                times[name].append((time.perf_counter() - start) / 10)
    dense = statistics.median(times["dense"])
    print(f"{space.name} at {space.input_size}, batch 1, {torch.get_num_threads()} threads")
    print("| network | MAC ratio | latency ms (median) | latency ratio | latency / MAC ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in times.items():
        t = statistics.median(values)
        print(
            f"| {name} | {macs[name]:.3f} | {t * 1e3:.2f} | {t / dense:.2f} | "
            f"{t / dense / macs[name]:.2f} |"
        )


if __name__ == "__main__":
    main()
