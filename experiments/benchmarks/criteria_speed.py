"""How long does each channel-importance criterion take, and what does CHIP's Gram trick save?

Scores a full-width network of ``--space`` (default ResNet-20, CIFAR-sized 3x32x32 inputs, 10
classes, freshly initialised: the cost does not depend on the weights) with every registered
criterion on ``--images`` random images, and prints the seconds of each. Then CHIP's channel
independence is computed for the same feature maps both ways, side by side: ``nas``'s exact
Gram-matrix form (one C x C Gram matrix per image, the eigenvalues of its C principal
submatrices in one batched call) and CHIP's own (one SVD of the C x HW matrix per zeroed channel
per image), on ``--chip-images`` images; it prints both times, their ratio and the largest
difference between the scores.

    python experiments/benchmarks/criteria_speed.py                # about a minute on 2 cores
    python experiments/benchmarks/criteria_speed.py --space resnet56 --images 256
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import nas
from nas.importance import CRITERIA
from nas.importance.activations import nuclear_norm_drops, nuclear_norm_drops_svd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="resnet20")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--chip-images", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    space = nas.create_space(args.space, num_classes=10, in_channels=3, input_size=(32, 32))
    model = space.build().eval()
    x = torch.randn(args.images, 3, 32, 32)
    y = torch.randint(0, 10, (args.images,))
    data = [(x[i : i + 64], y[i : i + 64]) for i in range(0, args.images, 64)]
    print(f"{args.space}, {args.images} images, {args.threads} threads")
    for name in CRITERIA.names():
        start = time.perf_counter()
        if CRITERIA.get(name).needs_data:
            nas.channel_scores(model, space, name, data, images=args.images)
        else:
            nas.channel_scores(model, space, name)
        print(f"  {name:>8}: {time.perf_counter() - start:7.2f} s")

    # CHIP both ways on the feature maps of every BN that writes a unit
    bns = [la.name for la in space.layers if la.kind == "bn" and la.out_unit is not None]
    feats: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_hook(
            lambda _m, _i, out, n=n: feats.__setitem__(n, F.relu(out).flatten(2))
        )
        for n in bns
    ]
    with torch.no_grad():
        model(x[: args.chip_images])
    for h in hooks:
        h.remove()
    start = time.perf_counter()
    gram = {n: nuclear_norm_drops(f) for n, f in feats.items()}
    t_gram = time.perf_counter() - start
    start = time.perf_counter()
    svd = {n: nuclear_norm_drops_svd(f) for n, f in feats.items()}
    t_svd = time.perf_counter() - start
    diff = max(float((gram[n].double() - svd[n]).abs().max()) for n in bns)
    scale = max(float(svd[n].abs().max()) for n in bns)
    print(
        f"CHIP on {args.chip_images} images, {len(bns)} layers: Gram form {t_gram:.2f} s, "
        f"one SVD per channel {t_svd:.2f} s: {t_svd / t_gram:.1f} x faster; largest score "
        f"difference {diff:.1e} (scores up to {scale:.1e})"
    )


if __name__ == "__main__":
    main()
