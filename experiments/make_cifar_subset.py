"""Build ``cifar10-5k.npz``, the hard task of the benchmarks, from an official CIFAR-10 download.

The file: the first ``--per-batch`` (1,017) images of each of the six official python batches,
in file order, with their labels -- ``data_batch_1`` ... ``data_batch_5`` become the training
set (5,085 images), ``test_batch`` the test set (1,017) -- as uint8 NCHW arrays ``x_train,
y_train, x_test, y_test`` (the ``npz:`` dataset format), written with ``np.savez_compressed``.
Nothing is downloaded: point ``--data-root`` at a folder holding ``cifar-10-batches-py`` (the
official ``cifar-10-python.tar.gz``, unpacked; ``torchvision.datasets.CIFAR10(...,
download=True)`` leaves the same folder).

    python experiments/make_cifar_subset.py --data-root ~/data --out data/cifar10-5k.npz
    nas search --dataset npz:data/cifar10-5k.npz --space resnet20_b --compare

It prints the SHA-256 of the file it wrote; the project's copy has
b16b676c44543fcb41b924e32295518898f0dac501a5ea874c293a142d90c245.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from pathlib import Path

import numpy as np

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
PER_BATCH = 1017
EXPECTED_SHA256 = "b16b676c44543fcb41b924e32295518898f0dac501a5ea874c293a142d90c245"


def read_batch(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` images (uint8, N x 3 x 32 x 32) and labels (int64) of one batch file."""
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")  # the official files are pickles of arrays
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path} is not a CIFAR-10 python batch (data {data.shape})")
    if len(data) < n:
        raise ValueError(f"{path} holds {len(data)} images, fewer than {n}")
    return data[:n].reshape(n, 3, 32, 32), labels[:n]


def build(root: Path, per_batch: int = PER_BATCH) -> dict[str, np.ndarray]:
    """The four arrays of the subset from ``root/cifar-10-batches-py``."""
    folder = root / "cifar-10-batches-py"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found (unpack cifar-10-python.tar.gz into {root})")
    train = [read_batch(folder / name, per_batch) for name in TRAIN_BATCHES]
    x_test, y_test = read_batch(folder / TEST_BATCH, per_batch)
    return {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, help="folder holding cifar-10-batches-py")
    parser.add_argument("--out", default="data/cifar10-5k.npz", help="output .npz file")
    parser.add_argument(
        "--per-batch", type=int, default=PER_BATCH, help="images taken from each batch file"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists; remove it or choose another --out", file=sys.stderr)
        return 2
    try:
        arrays = build(Path(args.data_root).expanduser(), args.per_batch)
    except (OSError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
    )
    digest = sha256(out)
    same = " (the project's copy)" if digest == EXPECTED_SHA256 else ""
    print(
        f"wrote {out}: {len(arrays['y_train'])} training and {len(arrays['y_test'])} test "
        f"images; sha256 {digest}{same}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
