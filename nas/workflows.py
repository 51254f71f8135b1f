"""End-to-end jobs behind the command line, callable from Python: train a baseline, extract.

Each job checks all of its input (names, files, output directory) before it writes anything,
writes its resolved configuration (``args.yaml``) next to its results, and returns the numbers it
also saves in ``metrics.json``.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import torch

import search_spaces
from nas.data import load_data
from nas.extract import channel_order, check_full_weights, extract, save_model
from nas.io import load_state_dict_file, prepare_out_dir, write_json, write_yaml
from nas.train import TrainConfig, evaluate, seed_everything, train_model
from search_spaces import WidthSpec


def environment() -> dict[str, str]:
    """Versions recorded with every run."""
    import torchvision

    from nas import __version__

    return {
        "channel_nas": __version__,
        "torch": str(torch.__version__),
        "torchvision": str(torchvision.__version__),
        "python": platform.python_version(),
    }


def train_baseline(
    *,
    space: str = "resnet20",
    dataset: str = "digits",
    out_dir: str | Path,
    epochs: int = 30,
    lr: float = 0.1,
    batch_size: int = 128,
    weight_decay: float = 5e-4,
    label_smoothing: float = 0.0,
    val_fraction: float = 0.1,
    seed: int = 0,
    data_root: str | None = None,
    download: bool = False,
    image_size: int | None = None,
    augment: bool = True,
    num_workers: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the full-width network of ``space`` on ``dataset``; save it to ``out_dir``.

    Writes ``arch.json``, ``model.pt``, ``model.ts``, ``summary.csv``, ``args.yaml`` and
    ``metrics.json``; returns the metrics.
    """
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    search_spaces.get_entry(space)  # unknown names fail before any data is read
    config = TrainConfig(
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        seed=seed,
        device=device,
    )
    config.validate()
    data = load_data(
        dataset,
        data_root=data_root,
        download=download,
        val_fraction=val_fraction,
        batch_size=batch_size,
        seed=seed,
        augment=augment,
        image_size=image_size,
        num_workers=num_workers,
    )
    sp = search_spaces.create(
        space,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        input_size=data.input_size,
    )
    seed_everything(seed)
    model = sp.build()
    spec = sp.spec()

    out.mkdir(parents=True, exist_ok=True)
    write_yaml(
        out / "args.yaml",
        {
            "command": "train",
            "space": space,
            "dataset": dataset,
            "data": data.describe(),
            "train": vars(config)
            | {
                "batch_size": batch_size,
                "val_fraction": val_fraction,
                "augment": augment,
                "image_size": image_size,
            },
            "data_root": data_root,
            "environment": environment(),
        },
    )
    start = time.perf_counter()
    records = train_model(
        model,
        data.train,
        config=config,
        val_loader=data.val,
        out_dir=out,
        progress=progress,
        desc=f"train {space}",
    )
    seconds = time.perf_counter() - start
    test = evaluate(model, data.test, device=device)
    save_model(model, spec, out)
    metrics = {
        "space": space,
        "dataset": dataset,
        "test_acc": test.accuracy,
        "test_loss": test.loss,
        "val_acc": records[-1].val_acc if records else None,
        "macs": sp.macs(),
        "flops": 2 * sp.macs(),
        "params": sp.params(),
        "epochs": epochs,
        "train_seconds": round(seconds, 2),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def extract_to_dir(
    weights: str | Path,
    arch: str | Path,
    out_dir: str | Path,
    *,
    order: str = "l1",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Slice the full network in ``weights`` down to the spec in ``arch``; save to ``out_dir``.

    ``order`` picks the kept channels of each unit (``l1``, ``bn`` or ``first``).
    """
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    spec = WidthSpec.load(arch)
    space = spec.get_space()
    state = load_state_dict_file(weights)
    check_full_weights(space, state, source=f"weights {weights}")
    full = space.build()
    full.load_state_dict(state)
    full.eval()
    pruned = extract(full, spec, channel_order(full, space, order))
    save_model(pruned, spec, out)
    write_yaml(
        out / "args.yaml",
        {
            "command": "extract",
            "weights": str(weights),
            "arch": str(arch),
            "order": order,
            "environment": environment(),
        },
    )
    report = {
        "space": spec.space,
        "weights": str(weights),
        "arch": str(arch),
        "order": order,
        "macs": spec.macs(),
        "flops": 2 * spec.macs(),
        "macs_ratio": spec.macs_ratio(),
        "params": spec.params(),
        "params_ratio": spec.params() / space.params(),
    }
    write_json(out / "metrics.json", report)
    return report
