"""Build a second image task offline, for the transfer example of the README.

From scikit-learn's embedded digits it writes ``.npz`` data (``x_train, y_train, x_test,
y_test``, NHWC uint8) of a task that differs from ``digits`` in every way transfer must handle:
3 channels instead of 1 (each image tinted with a random colour on a random background),
16x16 pixels instead of 8x8, and 5 classes (the digits 0-4) instead of 10, with its own
train/test split.

    python experiments/make_transfer_task.py --out data/digits_rgb5.npz
    nas transfer --arch runs/search/arch.json --weights runs/search/model.pt \\
        --dataset npz:data/digits_rgb5.npz --compare --out runs/transfer
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits


def make_task(seed: int = 0, size: int = 16, classes: int = 5) -> dict[str, np.ndarray]:
    digits = load_digits()
    keep = digits.target < classes
    x = torch.tensor(digits.images[keep] / 16.0, dtype=torch.float32)[:, None]
    y = digits.target[keep].astype(np.int64)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    rng = np.random.default_rng(seed)
    ink = torch.tensor(rng.uniform(0.4, 1.0, (len(y), 3, 1, 1)), dtype=torch.float32)
    paper = torch.tensor(rng.uniform(0.0, 0.35, (len(y), 3, 1, 1)), dtype=torch.float32)
    rgb = paper + (ink - paper) * x  # (N, 3, H, W) in [0, 1]
    images = (rgb.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    order = rng.permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    return {
        "x_train": images[train],
        "y_train": y[train],
        "x_test": images[test],
        "y_test": y[test],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/digits_rgb5.npz", help="output .npz file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = make_task(args.seed)
    np.savez_compressed(
        out,
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
    )
    print(
        f"wrote {out}: {len(arrays['y_train'])} train / {len(arrays['y_test'])} test images, "
        f"{arrays['x_train'].shape[1:]} (HWC), {int(arrays['y_train'].max()) + 1} classes"
    )


if __name__ == "__main__":
    main()
