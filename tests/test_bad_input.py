"""The bad-input catalogue: every case a user can get wrong, organised by command.

Each case runs ``nas ...`` and must end with exit code 2 and exactly one line on stderr that
starts with ``error:`` and says why (matched here), with no traceback and no warning, and leave
the files exactly as they were: nothing new, nothing half-written, every user file untouched.

The cases sit in one table per command (:data:`CATALOGUE`: ``TRAIN_CASES``, ``SEARCH_CASES``,
...); a test id reads ``COMMAND: case`` (``pytest -k "search: "`` runs one command's). A new
command needs its table: :func:`test_every_command_has_its_cases` fails until it has one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import search_spaces
from nas.cli import main
from nas.cli.commands import COMMANDS
from nas.errors import ConfigError
from nas.extraction import extract
from nas.selection import GRID_CHOOSERS, check_band
from nas.width_search import SearchConfig, search_budget

DIGITS: dict[str, Any] = {"num_classes": 10, "in_channels": 1, "input_size": (8, 8)}
FAST = ["--quiet", "--epochs", "1"]
SEARCH_FAST = [
    "--quiet",
    "--baseline-epochs",
    "1",
    "--warmup-epochs",
    "1",
    "--search-epochs",
    "1",
    "--finetune-epochs",
    "1",
    *("--population", "4", "--generations", "1"),  # the default chooser, small
]
# the search cases refused on an option: no warm-up and no fine-tuning, should one ever start
SEARCH_REFUSED = [
    "--quiet",
    *("--baseline-epochs", "1", "--warmup-epochs", "0"),
    *("--search-epochs", "1", "--finetune-epochs", "0"),
]


# A budget above the smallest network that no assignment of the width choices reaches: with two
# widths per unit (50 % and 100 %), ResNet-20's grid has no network between 50.2 % and 54.6 % of
# the MACs, and 52.4 % +- 0.5 % lies in that gap (the argmax projection lands there off the grid;
# test_the_band_gap_is_off_the_grid checks it).
BAND_GAP = ["--width-ratios", "0.5,1", "--tolerance", "0.005", "--target-macs", "0.524"]


class _Payload:
    """A pickle that would create a file when loaded unsafely."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))  # unpickling would call open(path, "w"): a new file


def _npz(path: Path, **change: np.ndarray | None) -> Path:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray | None] = {
        "x_train": rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
        "y_train": np.arange(40) % 4,
        "x_test": rng.integers(0, 256, (12, 8, 8), dtype=np.uint8),
        "y_test": np.arange(12) % 4,
    }
    arrays.update(change)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})  # type: ignore[arg-type]
    return path


def _image_tree(root: Path, classes: tuple[str, ...], *, garbage: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("val", 2)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                path = folder / f"{i}.png"
                if garbage:
                    path.write_text("these bytes are not an image")
                else:
                    pixels = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(path)
    return root


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files the cases read: weights, specs, data, configs, run directories."""
    root = tmp_path_factory.mktemp("assets")
    space = search_spaces.create("resnet20", **DIGITS)
    state = space.build().state_dict()
    torch.save(state, root / "full.pt")
    spec = space.spec(space.uniform_widths(0.5))
    spec.save(root / "arch.json")
    torch.save(extract(state, spec).state_dict(), root / "pruned.pt")
    resnet32 = search_spaces.create("resnet32", **DIGITS)
    resnet32.spec(resnet32.uniform_widths(0.5)).save(root / "arch_resnet32.json")
    wide = json.loads((root / "arch.json").read_text())
    wide["widths"]["layer1.0.conv1"] = 17  # more than the unit has
    (root / "arch_too_wide.json").write_text(json.dumps(wide))
    (root / "arch_broken.json").write_text('{"space": "resnet20", "widths": ')
    raw = (root / "full.pt").read_bytes()
    (root / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (root / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "empty.pt").write_bytes(b"")
    torch.save({"model": _Payload(root / "PWNED")}, root / "payload.pt")
    with open(root / "payload.pkl", "wb") as f:
        pickle.dump(_Payload(root / "PWNED"), f)
    torch.save(torch.nn.Linear(2, 2), root / "whole_model.pt")
    # data
    _npz(root / "good.npz")
    _npz(root / "wrong_keys.npz", y_test=None)
    _npz(root / "wrong_shape.npz", x_train=np.zeros((40, 64), dtype=np.uint8))
    _npz(root / "wrong_dtype.npz", y_train=(np.arange(40) % 4).astype(np.float32))
    _npz(root / "huge_label.npz", y_train=np.array([0, 1, 2, 10**9] * 10))
    _npz(root / "empty.npz", x_test=np.zeros((0, 8, 8), np.uint8), y_test=np.zeros(0, int))
    nan = np.random.default_rng(1).random((40, 8, 8)).astype(np.float32)
    nan[3, 4, 4] = np.nan
    _npz(root / "nan.npz", x_train=nan)
    _npz(root / "one_class.npz", y_train=np.zeros(40, dtype=int), y_test=np.zeros(12, int))
    _npz(root / "unseen_test.npz", y_test=np.arange(12) % 5)
    _npz(
        root / "three.npz",
        x_train=np.zeros((3, 8, 8), np.uint8),
        y_train=np.array([0, 1, 2]),
        y_test=np.arange(12) % 3,
    )
    _npz(
        root / "one_pixel.npz",
        x_train=np.zeros((40, 1, 1), np.uint8),
        x_test=np.zeros((12, 1, 1), np.uint8),
    )
    (root / "not_npz.npz").write_text("x_train,y_train\n1,2\n")
    _image_tree(root / "single_class", ("cat",))
    _image_tree(root / "non_images", ("cat", "dog"), garbage=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "mine.png")  # a user's figure
    # latency tables: one of another space, a corrupt one
    from tests.conftest import synthetic_latency_table

    table = synthetic_latency_table(resnet32)
    table.env["threads"] = 1  # as the cases that need it run
    table.save(root / "table_resnet32.json")
    (root / "table_corrupt.json").write_text('{"format": "channel-nas/latency-table-1", "spa')
    # configs
    (root / "malformed.yaml").write_text("epochs: [1, 2\nlr: 0.1\n")
    (root / "unknown_key.yaml").write_text("epochs: 1\nlearning_rate: 0.1\n")
    (root / "wrong_type.yaml").write_text("epochs: ten\n")
    (root / "not_a_mapping.yaml").write_text("- epochs\n- 1\n")
    (root / "search_unknown_key.yaml").write_text("search_epochs: 1\nfrobnicate: 3\n")
    (root / "search_malformed.yaml").write_text("search_epochs: [1,\n")
    # a finished nas train run (digits, one epoch) and a fake search run with a torn checkpoint
    assert main(["train", "--out", str(root / "trained"), *FAST]) == 0
    fake = root / "search_run"
    fake.mkdir()
    (fake / "args.yaml").write_text(yaml.safe_dump({"command": "search", "space": "resnet20"}))
    (fake / "search_checkpoint.pt").write_bytes(raw[:1000])
    return root


def snapshot(*roots: Path) -> dict[str, tuple[str, int]]:
    """Every file and directory under ``roots``: content hash (or "dir") and mode."""
    out: dict[str, tuple[str, int]] = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            if not path.exists():
                continue
            kind = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path)] = (kind, path.stat().st_mode)
    return out


@dataclass(frozen=True)
class Case:
    """``argv(assets, tmp)`` makes the command line (and any files the case needs in ``tmp``);
    ``message`` is a regular expression the error line must match."""

    name: str
    argv: Callable[[Path, Path], list[str]]
    message: str


def _user_dir(tmp: Path) -> Path:
    """A folder of the user's own files (nas never wrote it)."""
    d = tmp / "mine"
    d.mkdir()
    (d / "metrics.json").write_text('{"mine": true}\n')
    (d / "notes.txt").write_text("my notes\n")
    return d


def _empty_dir(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _copy_run(src: Path, tmp: Path) -> Path:
    dst = tmp / src.name
    dst.mkdir()
    for p in src.rglob("*"):
        if p.is_file():
            (dst / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / p.relative_to(src)).write_bytes(p.read_bytes())
    return dst


def _torn_train_run(a: Path, t: Path) -> Path:
    """A copy of the train run whose checkpoint was torn mid-write (no earlier one)."""
    run = _copy_run(a / "trained", t)
    (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:2000])
    for name in ("metrics.json", "model.pt", "model.pt2", "model.ts"):
        (run / name).unlink()
    return run


def _user_net(t: Path) -> Path:
    """A user's network file (a file factory), written where the case runs."""
    path = t / "user_net.py"
    path.write_text("from torch import nn\n\ndef net():\n    return nn.Conv2d(3, 8, 3)\n")
    return path


def _out(t: Path) -> str:
    return str(t / "out")


def _extract_weights(file: str) -> Callable[[Path, Path], list[str]]:
    def argv(a: Path, t: Path) -> list[str]:
        return [
            "extract",
            "--weights",
            str(a / file),
            "--arch",
            str(a / "arch.json"),
            "--out",
            _out(t),
        ]

    return argv


def _train_npz(file: str) -> Callable[[Path, Path], list[str]]:
    def argv(a: Path, t: Path) -> list[str]:
        return ["train", "--dataset", f"npz:{a / file}", "--out", _out(t), *FAST]

    return argv


def _search(*options: str) -> Callable[[Path, Path], list[str]]:
    """``nas search OPTIONS`` into a new folder, with SEARCH_REFUSED."""

    def argv(a: Path, t: Path) -> list[str]:
        return ["search", *options, "--out", _out(t), *SEARCH_REFUSED]

    return argv


def _below_every_sub_network() -> str:
    """A --target-macs 1 % under the smallest sub-network of the digits task: the argmax path
    accepts it (within the 2 % tolerance), but --select predictor would find no sub-network in
    its pool's band, after the search: it is refused before any work."""
    space = search_spaces.create("resnet20", **DIGITS)
    floor = search_budget(SearchConfig(), space).floor
    return f"{floor * 0.99 / 1e3:.3f}K"


# -- the command line itself (no command, or none it knows) ------------------------------------
CLI_CASES = [
    Case("unknown command", lambda a, t: ["serch"], "invalid choice: 'serch'"),
]

# -- nas spaces --------------------------------------------------------------------------------
SPACES_CASES = [
    Case(
        "unknown option",
        lambda a, t: ["spaces", "--frobnicate"],
        "unrecognized arguments: --frobnicate",
    ),
]

# -- nas profile -------------------------------------------------------------------------------
PROFILE_CASES = [
    Case(
        "a file factory without an input size",
        lambda a, t: ["profile", f"{_user_net(t)}:net"],
        "no default input size: give --input-size",
    ),
    Case(
        "a model without prunable channels",
        lambda a, t: ["profile", "torchvision:convnext_tiny", "--input-size", "32"],
        "has no prunable channels",
    ),
    Case(
        "malformed spec",
        lambda a, t: ["profile", "--arch", str(a / "arch_broken.json")],
        "arch_broken.json",
    ),
    Case(
        "a corrupt latency table",
        lambda a, t: [
            "profile",
            *("--arch", str(a / "arch.json"), "--table", str(a / "table_corrupt.json")),
        ],
        "is not a latency table",
    ),
]

# -- nas latency-table -------------------------------------------------------------------------
LATENCY_TABLE_CASES = [
    Case(
        "a latency table would be overwritten",
        lambda a, t: ["latency-table", "--out", str(a / "table_resnet32.json")],
        "pass --resume",
    ),
]

# -- nas train ---------------------------------------------------------------------------------
TRAIN_CASES = [
    # unknown names
    Case(
        "unknown dataset",
        lambda a, t: ["train", "--dataset", "cifar11", "--out", _out(t)],
        "unknown dataset 'cifar11'",
    ),
    Case(
        "unknown option",
        lambda a, t: ["train", "--out", _out(t), "--epoch", "3"],
        "unrecognized arguments: --epoch 3",
    ),
    # numbers
    Case("NaN", lambda a, t: ["train", "--lr", "nan", "--out", _out(t)], "--lr"),
    Case("inf", lambda a, t: ["train", "--lr", "inf", "--out", _out(t)], "--lr"),
    Case(
        "huge epochs",
        lambda a, t: ["train", "--epochs", "10000000", "--out", _out(t)],
        r"--epochs must be in \[1, 100000\]",
    ),
    Case(
        "huge batch",
        lambda a, t: ["train", "--batch-size", "1000000000000", "--out", _out(t)],
        "--batch-size must be in",
    ),
    Case(
        "seed overflow (train)",
        lambda a, t: ["train", "--seed", "99999999999999999999", "--out", _out(t)],
        "--seed must be an integer",
    ),
    Case(
        "validation fraction 1",
        lambda a, t: ["train", "--val-fraction", "1", "--out", _out(t)],
        "--val-fraction",
    ),
    Case("zero threads", lambda a, t: ["train", "--threads", "0", "--out", _out(t)], "--threads"),
    # configuration files
    Case(
        "malformed YAML",
        lambda a, t: ["train", "--config", str(a / "malformed.yaml"), "--out", _out(t)],
        "malformed.yaml",
    ),
    Case(
        "unknown YAML key",
        lambda a, t: ["train", "--config", str(a / "unknown_key.yaml"), "--out", _out(t)],
        "learning_rate",
    ),
    Case(
        "YAML value of the wrong type",
        lambda a, t: ["train", "--config", str(a / "wrong_type.yaml"), "--out", _out(t)],
        "epochs",
    ),
    Case(
        "missing config file",
        lambda a, t: ["train", "--config", str(t / "nope.yaml"), "--out", _out(t)],
        "nope.yaml",
    ),
    # data
    *[
        Case(
            f"npz: {what}",
            _train_npz(file),
            message,
        )
        for what, file, message in [
            ("wrong keys", "wrong_keys.npz", "missing array.*y_test"),
            ("wrong shapes", "wrong_shape.npz", "3-D or 4-D"),
            ("wrong dtype", "wrong_dtype.npz", "integer labels"),
            ("label 10^9", "huge_label.npz", "label 1000000000 is out of range"),
            ("empty arrays", "empty.npz", "empty"),
            ("NaN pixels", "nan.npz", "NaN"),
            ("one class", "one_class.npz", "one class"),
            ("test label unseen in training", "unseen_test.npz", "never appears"),
            ("three samples", "three.npz", "need at least 8"),
            ("1x1 images", "one_pixel.npz", "need at least 4x4"),
            ("not an npz", "not_npz.npz", r"not a valid \.npz"),
            ("missing file", "nope.npz", "not found"),
        ]
    ],
    Case(
        "image folder of one class",
        lambda a, t: [
            "train",
            *("--dataset", f"imagefolder:{a / 'single_class'}", "--image-size", "8"),
            *("--out", _out(t), *FAST),
        ],
        "1 class; need at least 2",
    ),
    Case(
        "image folder of non-images",
        lambda a, t: [
            "train",
            *("--dataset", f"imagefolder:{a / 'non_images'}", "--image-size", "8"),
            *("--out", _out(t), *FAST),
        ],
        "cannot read image",
    ),
    # output paths
    Case(
        "--out is a file",
        lambda a, t: ["train", "--out", str(a / "good.npz"), *FAST],
        "not a directory",
    ),
    Case(
        "--out below a file",
        lambda a, t: ["train", "--out", str(a / "good.npz" / "run"), *FAST],
        "not a directory",
    ),
    Case(
        "--out unwritable",
        lambda a, t: ["train", "--out", "/proc/nas-cannot-write-here", *FAST],
        "cannot (create|write)",
    ),
    Case(
        "--out holds the user's files",
        lambda a, t: ["train", "--out", str(_user_dir(t)), *FAST],
        "not empty",
    ),
    # resuming
    Case(
        "torn checkpoint on --resume",
        lambda a, t: ["train", "--resume", "--out", str(_torn_train_run(a, t)), *FAST],
        r"checkpoint\.pt",
    ),
    Case(
        "--resume on a missing folder",
        lambda a, t: ["train", "--resume", "--out", str(t / "nothing"), *FAST],
        "holds no run to resume",
    ),
    Case(
        "--resume on an empty folder",
        lambda a, t: ["train", "--resume", "--out", str(_empty_dir(t)), *FAST],
        "holds no run to resume",
    ),
    Case(
        "--resume with another thread count",
        lambda a, t: [
            "train",
            *("--resume", "--threads", "3", "--out", str(_torn_train_run(a, t)), *FAST),
        ],
        r"options differ .*threads",
    ),
    Case(
        "--resume with --overwrite",
        lambda a, t: ["train", "--resume", "--overwrite", "--out", str(a / "trained")],
        "exclude each other",
    ),
]

# -- nas extract -------------------------------------------------------------------------------
EXTRACT_CASES = [
    Case(
        "unknown channel order",
        lambda a, t: [
            "extract",
            *("--weights", str(a / "full.pt"), "--arch", str(a / "arch.json")),
            *("--out", _out(t), "--order", "l3"),
        ],
        "unknown --order 'l3'; choose one of",
    ),
    *[
        Case(
            f"{what} weights",
            _extract_weights(file),
            message,
        )
        for what, file, message in [
            ("truncated", "truncated.pt", "truncated or corrupt"),
            ("random-bytes", "random.pt", "not a tensor file"),
            ("empty", "empty.pt", r"empty\.pt"),
            ("foreign-pickle", "payload.pt", "holds Python objects"),
            ("plain-pickle", "payload.pkl", r"payload\.pkl"),
            ("whole-model", "whole_model.pt", "holds Python objects"),
            ("missing", "nope.pt", "not found"),
            ("pruned", "pruned.pt", "fc|layer"),
        ]
    ],
    Case(
        "spec of another space",
        lambda a, t: [
            "extract",
            *("--weights", str(a / "full.pt"), "--arch", str(a / "arch_resnet32.json")),
            *("--out", _out(t)),
        ],
        "resnet32|unexpected|missing",
    ),
    Case(
        "spec with too wide a unit",
        lambda a, t: [
            "extract",
            *("--weights", str(a / "full.pt"), "--arch", str(a / "arch_too_wide.json")),
            *("--out", _out(t)),
        ],
        "layer1.0.conv1",
    ),
]

# -- nas search --------------------------------------------------------------------------------
SEARCH_CASES = [
    # unknown names
    Case(
        "unknown space",
        lambda a, t: ["search", "--space", "resnet21", "--out", _out(t)],
        "unknown --space 'resnet21'; choose one of.*resnet20",
    ),
    Case(
        "unknown torchvision model",
        lambda a, t: ["search", "--space", "torchvision:mobilenet_v9", "--out", _out(t)],
        "unknown torchvision model 'mobilenet_v9'",
    ),
    Case(
        "a torchvision detection model",
        lambda a, t: ["search", "--space", "torchvision:fasterrcnn_resnet50_fpn", "--out", _out(t)],
        "not a torchvision classification model \\(detection\\)",
    ),
    Case(
        "a factory module that does not exist",
        lambda a, t: ["search", "--space", "nosuch.module:net", "--out", _out(t)],
        "cannot import nosuch.module",
    ),
    Case(
        "a traced model too small for the data",
        lambda a, t: ["search", "--space", "torchvision:vgg11_bn", "--out", _out(t)],
        "cannot run on 8x8 inputs",
    ),
    Case(
        "unknown strategy",
        lambda a, t: ["search", "--strategy", "gumbel", "--out", _out(t)],
        "unknown --strategy 'gumbel'; choose one of",
    ),
    Case(
        "unknown chooser",
        lambda a, t: ["search", "--select", "nosuch", "--out", _out(t)],
        "unknown --select 'nosuch'; choose one of: .*evolution",
    ),
    Case("unknown schedule", _search("--schedule", "nope"), "nope"),
    Case("unknown architecture signal", _search("--arch-signal", "vibes"), "--arch-signal"),
    Case(
        "a label-free architecture signal for gates trained with the weights",
        _search("--arch-signal", "teacher", "--strategy", "channel-gumbel"),
        "--arch-signal teacher is the loss of the architecture steps; --strategy channel-gumbel",
    ),
    # the budget
    Case(
        "impossible budget",
        lambda a, t: ["search", "--target-macs", "1.5", "--out", _out(t)],
        "--target-macs",
    ),
    Case(
        "budget below the smallest network",
        lambda a, t: ["search", "--target-macs", "0.001", "--out", _out(t)],
        "smallest",
    ),
    Case(
        "--cost latency without a table",
        lambda a, t: ["search", "--cost", "latency", "--target-latency", "0.5", "--out", _out(t)],
        "needs --latency-table",
    ),
    Case(
        "a latency table of another space",
        lambda a, t: [
            "search",
            *("--cost", "latency", "--target-latency", "0.5"),
            *("--latency-table", str(a / "table_resnet32.json"), "--out", _out(t)),
        ],
        "was measured for resnet32",
    ),
    Case(
        "a latency search without its target",
        lambda a, t: [
            "search",
            *("--cost", "latency", "--latency-table", str(a / "table_resnet32.json")),
            *("--space", "resnet32", "--threads", "1", "--out", _out(t)),
        ],
        "needs --target-latency",
    ),
    Case(
        "--select greedy with a budget no narrowing reaches",
        lambda a, t: ["search", "--select", "greedy", *BAND_GAP, "--out", _out(t), *SEARCH_FAST],
        r"--select greedy: no narrowing of the width choices reaches the budget \(52\.1%-52\.7%",
    ),
    Case(
        "--select evolution with a budget no candidate reaches",
        lambda a, t: ["search", "--select", "evolution", *BAND_GAP, "--out", _out(t), *SEARCH_FAST],
        r"--select evolution: no candidate of the width choices reaches the budget",
    ),
    Case(
        "--select nao with a budget no candidate reaches",
        lambda a, t: ["search", "--select", "nao", *BAND_GAP, "--out", _out(t), *SEARCH_FAST],
        r"--select nao: no candidate of the width choices reaches the budget",
    ),
    Case("target MACs of 0", _search("--target-macs", "0"), "target-macs"),
    Case("target MACs above the full network", _search("--target-macs", "10G"), "target-macs"),
    Case("target MACs that are no number", _search("--target-macs", "lots"), "target-macs"),
    Case("tolerance below the minimum", _search("--tolerance", "0.001"), "--tolerance"),
    # uniform widths in multiples of 16 reach 0.60, 0.68, 0.76, 0.92 of the MACs: not 0.84
    Case(
        "--compare with no uniform width in the band",
        lambda a, t: [
            "search",
            *("--compare", "--width-multiple", "16", "--target-macs", "0.84"),
            *("--out", _out(t), *SEARCH_REFUSED),
        ],
        "no uniform width",
    ),
    Case(
        "--select predictor with no sub-network under the budget",
        lambda a, t: [
            "search",
            *("--select", "predictor", "--target-macs", _below_every_sub_network()),
            *("--out", _out(t), "--quiet"),
        ],
        "no sub-network of the width choices",
    ),
    # numbers
    Case(
        "arch fraction 1",
        lambda a, t: ["search", "--arch-fraction", "1", "--out", _out(t)],
        r"--arch-fraction must be in \(0, 1\)",
    ),
    Case(
        "--select evolution with a population of 1",
        lambda a, t: ["search", "--select", "evolution", "--population", "1", "--out", _out(t)],
        "--population must be >= 2, got 1",
    ),
    Case(
        "no calibration images",
        lambda a, t: ["search", "--calib-images", "0", "--out", _out(t)],
        "--calib-images must be >= 1, got 0",
    ),
    Case(
        "final temperature above the initial",
        _search("--tau0", "0.05", "--tau-min", "0.1"),
        "--tau-min",
    ),
    Case("infinite temperature", _search("--tau0", "inf"), "--tau0"),
    Case("infinite learning rate", _search("--lr", "inf"), "--lr"),
    Case("NaN budget weight", _search("--budget-weight", "nan"), "--budget-weight"),
    Case("negative budget band", _search("--budget-band", "-1"), "--budget-band"),
    Case("budget band above 1", _search("--budget-band", "3"), "--budget-band"),
    Case(
        "negative architecture weight decay",
        _search("--arch-weight-decay", "-1"),
        "--arch-weight-decay",
    ),
    Case("negative weight decay", _search("--weight-decay", "-1"), "--weight-decay"),
    Case("momentum 1", _search("--momentum", "1"), "--momentum"),
    Case("distillation weight above 1", _search("--kd-alpha", "1.5"), "--kd-alpha"),
    Case("distillation temperature 0", _search("--kd-temperature", "0"), "--kd-temperature"),
    Case(
        "too few predictor samples",
        _search("--select", "predictor", "--rank-samples", "5"),
        "--rank-samples",
    ),
    Case(
        "predictor top-k above its pool",
        _search("--select", "predictor", "--rank-top-k", "20", "--rank-pool", "10"),
        "--rank-top-k",
    ),
    Case("width ratios outside (0, 1]", _search("--width-ratios", "0,2"), "ratios"),
    Case(
        "arch fraction 0", _search("--arch-fraction", "0"), r"--arch-fraction must be in \(0, 1\)"
    ),
    # strategies and what they allow
    Case(
        "unknown strategy option",
        lambda a, t: [
            "search",
            *("--strategy", "channel-gumbel", "--strategy-option", "groups=8", "--out", _out(t)),
        ],
        "gate strategy 'channel-gumbel' has no option 'groups'",
    ),
    Case(
        "strategy option of the wrong type",
        lambda a, t: [
            "search",
            *("--strategy", "channel-gumbel", "--strategy-option", "group_size=big"),
            *("--out", _out(t)),
        ],
        "group_size: 'big' is not of type int",
    ),
    Case(
        "group size that does not divide the units",
        lambda a, t: [
            "search",
            *("--strategy", "channel-gumbel", "--strategy-option", "group_size=5"),
            *("--out", _out(t)),
        ],
        "group_size 5 does not divide",
    ),
    Case(
        "--static with a static strategy",
        lambda a, t: ["search", "--strategy", "scp", "--static", "--out", _out(t)],
        "static already",
    ),
    Case(
        "--from-scratch with a conditional network",
        lambda a, t: ["search", "--strategy", "batch-shaping", "--from-scratch", "--out", _out(t)],
        "add --static",
    ),
    Case("--from-scratch without fine-tuning", _search("--from-scratch"), "--from-scratch"),
    # configuration files and weights
    Case(
        "YAML that is not a mapping",
        lambda a, t: ["search", "--config", str(a / "not_a_mapping.yaml"), "--out", _out(t)],
        r"not_a_mapping\.yaml must hold a mapping",
    ),
    Case(
        "pruned weights to seed a search",
        lambda a, t: ["search", "--weights", str(a / "pruned.pt"), "--out", _out(t)],
        "a pruned network cannot seed a search",
    ),
    Case(
        "foreign pickle to seed a search",
        lambda a, t: ["search", "--weights", str(a / "payload.pt"), "--out", _out(t)],
        "holds Python objects",
    ),
    Case(
        "missing config file",
        lambda a, t: ["search", "--config", str(t / "missing.yaml"), "--out", _out(t)],
        "missing.yaml",
    ),
    Case(
        "unknown YAML key",
        lambda a, t: ["search", "--config", str(a / "search_unknown_key.yaml"), "--out", _out(t)],
        "frobnicate",
    ),
    Case(
        "malformed YAML",
        lambda a, t: ["search", "--config", str(a / "search_malformed.yaml"), "--out", _out(t)],
        r"search_malformed\.yaml",
    ),
    # output folders and resuming
    Case(
        "--overwrite of the user's files",
        lambda a, t: ["search", "--out", str(_user_dir(t)), "--overwrite", *SEARCH_FAST],
        "files nas did not write",
    ),
    Case(
        "--overwrite would delete an input",
        lambda a, t: [
            "search",
            *("--weights", str(_copy_run(a / "trained", t) / "model.pt")),
            *("--out", str(t / "trained"), "--overwrite", *SEARCH_FAST),
        ],
        "would delete .*model.pt, which this run reads",
    ),
    Case(
        "--resume on the user's folder",
        lambda a, t: ["search", "--resume", "--out", str(_user_dir(t)), *SEARCH_FAST],
        "holds files nas did not write, not a nas search run; nothing was changed",
    ),
    Case(
        "--resume of another command's run",
        lambda a, t: ["search", "--resume", "--out", str(_copy_run(a / "trained", t))],
        "a nas train run, not a nas search run",
    ),
    Case("--resume with --overwrite", _search("--resume", "--overwrite"), "exclude"),
]

# -- nas criteria ------------------------------------------------------------------------------
CRITERIA_CASES = [
    Case(
        "compare a criterion without scores",
        lambda a, t: [
            "criteria",
            "compare",
            *("--weights", str(a / "full.pt"), "--criteria", "l1,uniform", "--out", _out(t)),
        ],
        "nothing to compare",
    ),
    Case(
        "compare without weights",
        lambda a, t: ["criteria", "compare", "--out", _out(t)],
        "--weights",
    ),
]

# -- nas prune ---------------------------------------------------------------------------------
PRUNE_CASES = [
    Case(
        "unknown criterion",
        lambda a, t: [
            "prune",
            "--weights",
            str(a / "full.pt"),
            "--criterion",
            "l3",
            "--out",
            _out(t),
        ],
        "unknown --criterion 'l3'; choose one of",
    ),
    Case(
        "feature distillation without logit distillation",
        lambda a, t: [
            "prune",
            *("--weights", str(a / "full.pt"), "--kd-features", "kernel"),
            *("--kd-alpha", "0", "--out", _out(t)),
        ],
        "--kd-features kernel adds to the distillation from the full network",
    ),
    Case(
        "the functionality criterion on no images",
        lambda a, t: [
            "prune",
            *("--weights", str(a / "full.pt"), "--criterion", "function"),
            *("--score-images", "0", "--out", _out(t)),
        ],
        "--score-images",
    ),
    Case(
        "unknown allocation",
        lambda a, t: [
            "prune",
            "--weights",
            str(a / "full.pt"),
            "--allocation",
            "best",
            "--out",
            _out(t),
        ],
        "unknown --allocation 'best'; choose one of",
    ),
    Case(
        "spec allocation without a spec",
        lambda a, t: [
            "prune",
            "--weights",
            str(a / "full.pt"),
            "--allocation",
            "spec",
            "--out",
            _out(t),
        ],
        "--allocation spec needs --arch",
    ),
    Case(
        "a spec of another space",
        lambda a, t: [
            "prune",
            *("--weights", str(a / "full.pt"), "--allocation", "spec"),
            *("--arch", str(a / "arch_resnet32.json"), "--out", _out(t)),
        ],
        "width spec of resnet32, not resnet20",
    ),
    Case(
        "prune below the smallest network",
        lambda a, t: [
            "prune",
            "--weights",
            str(a / "full.pt"),
            "--target-macs",
            "1K",
            "--out",
            _out(t),
        ],
        "below the smallest resnet20",
    ),
    Case(
        "compare a from-scratch uniform pruning with itself",
        lambda a, t: [
            "prune",
            *("--weights", str(a / "full.pt"), "--allocation", "uniform", "--from-scratch"),
            *("--compare", "--out", _out(t)),
        ],
        "its reference would be the same network",
    ),
    Case(
        "prune weights of another space",
        lambda a, t: ["prune", "--weights", str(a / "pruned.pt"), "--out", _out(t)],
        "weights",
    ),
]

# -- nas rank ----------------------------------------------------------------------------------
RANK_CASES = [
    Case(
        "seed overflow (rank)",
        lambda a, t: ["rank", "--run", str(a / "search_run"), "--seed", "99999999999999999999"],
        "--seed must be an integer",
    ),
    Case(
        "rank of a run with a torn checkpoint",
        lambda a, t: ["rank", "--run", str(a / "search_run"), "--out", _out(t)],
        "search_run",
    ),
    Case(
        "rank of a folder that is no run",
        lambda a, t: ["rank", "--run", str(_user_dir(t)), "--out", _out(t)],
        "not a search run directory",
    ),
]

# -- nas sweep ---------------------------------------------------------------------------------
SWEEP_CASES = [
    Case(
        "unknown budget rule",
        lambda a, t: ["sweep", "--budget", "hinge", "--out", _out(t)],
        "unknown --budget 'hinge'; choose one of",
    ),
    Case(
        "a latency sweep with a table of another space",
        lambda a, t: [
            "sweep",
            *("--cost", "latency", "--budgets", "0.5"),
            *("--latency-table", str(a / "table_resnet32.json")),
            *("--trials", "1", "--out", _out(t)),
        ],
        "was measured for resnet32",
    ),
    Case(
        "sweep storage without its driver",
        lambda a, t: ["sweep", "--storage", "postgresql+psycopg2://u@h/db", "--out", _out(t)],
        r"driver psycopg2 is not installed \(write postgresql\+psycopg://",
    ),
    Case(
        "sweep storage that cannot be reached",
        lambda a, t: [
            "sweep",
            "--storage",
            "postgresql+psycopg://u@127.0.0.1:1/db",
            "--out",
            _out(t),
        ],
        r"cannot open --storage postgresql\+psycopg://u@127.0.0.1:1/db: .*onnection",
    ),
]

# -- nas transfer ------------------------------------------------------------------------------
TRANSFER_CASES = [
    Case(
        "seed overflow (transfer)",
        lambda a, t: ["transfer", "--arch", str(a / "arch.json"), "--seed", "1e30"],
        "--seed must be an integer",
    ),
    Case(
        "npz label 10^9 in transfer",
        lambda a, t: [
            "transfer",
            *("--arch", str(a / "arch.json"), "--dataset", f"npz:{a / 'huge_label.npz'}"),
            *("--out", _out(t), *FAST),
        ],
        "label 1000000000 is out of range",
    ),
]

# -- nas plot ----------------------------------------------------------------------------------
PLOT_CASES = [
    Case("unknown plot kind", lambda a, t: ["plot", "paretoo"], "invalid choice: 'paretoo'"),
    Case("plot without a kind", lambda a, t: ["plot"], "name a kind: pareto"),
    Case(
        "plot over an existing file",
        lambda a, t: ["plot", "pareto", str(a / "trained"), "--out", str(a / "mine.png")],
        r"mine\.png exists; pass --overwrite to replace it",
    ),
]


# -- nas export --------------------------------------------------------------------------------
def _folder(t: Path, name: str, *files: str) -> str:
    """A folder ``t/name`` holding ``files`` (each a small JSON object)."""
    d = t / name
    d.mkdir()
    for f in files:
        (d / f).write_text("{}\n")
    return str(d)


EXPORT_CASES = [
    Case(
        "export of a folder without a run",
        lambda a, t: ["export", _folder(t, "empty", "notes.json")],
        "holds no nas run",
    ),
    Case(
        "export of a conditional network",
        lambda a, t: ["export", _folder(t, "cond", "conditional.json", "arch.json")],
        "conditional.*--static",
    ),
    Case(
        "export to an unknown format",
        lambda a, t: ["export", str(a / "trained"), "--format", "tflite"],
        "unknown --format 'tflite'; choose one of: onnx",
    ),
]

COMPRESS_CASES = [
    Case(
        "compress a folder without a run",
        lambda a, t: ["compress", _folder(t, "empty", "notes.json"), "--out", _out(t)],
        "holds no nas run",
    ),
    Case(
        "compress a conditional network",
        lambda a, t: [
            "compress",
            _folder(t, "cond", "conditional.json", "arch.json"),
            *("--out", _out(t)),
        ],
        "conditional.*--static",
    ),
    Case(
        "one cluster",
        lambda a, t: ["compress", str(a / "trained"), "--clusters", "1", "--out", _out(t)],
        "--clusters must be in",
    ),
    Case(
        "data the network cannot read",
        lambda a, t: [
            "compress",
            str(a / "trained"),
            *("--dataset", f"npz:{a / 'good.npz'}", "--out", _out(t)),
        ],
        "the run's network reads 1x8x8 images of 10 classes",
    ),
    Case(
        "an output folder that is the run it reads",
        lambda a, t: ["compress", str(a / "trained"), "--out", str(a / "trained"), "--overwrite"],
        "--overwrite would delete",
    ),
]

SCALE_CASES = [
    Case(
        "a space whose depth cannot change",
        lambda a, t: ["scale", "--space", "resnet18", "--out", _out(t)],
        "the depth of resnet18 cannot change",
    ),
    Case(
        "multipliers that are not three numbers",
        lambda a, t: ["scale", "--multipliers", "1.2,x", "--out", _out(t)],
        "--multipliers must be ALPHA,BETA,GAMMA",
    ),
    Case(
        "a target above the full network",
        lambda a, t: ["scale", "--target-macs", "1.5", "--out", _out(t)],
        "target-macs",
    ),
    Case(
        "a grid with no validation split to judge it",
        lambda a, t: ["scale", "--val-fraction", "0", "--out", _out(t)],
        "--val-fraction 0 leaves empty",
    ),
    Case(
        "an unknown space",
        lambda a, t: ["scale", "--space", "resnet15", "--out", _out(t)],
        "resnet15",
    ),
]

EXPLAIN_CASES = [
    Case(
        "explain a folder without a run",
        lambda a, t: ["explain", _folder(t, "empty", "notes.json"), "--out", _out(t)],
        "holds no nas run",
    ),
    Case(
        "a layer the network does not have",
        lambda a, t: ["explain", str(a / "trained"), "--layer", "layer9", "--out", _out(t)],
        "--layer 'layer9' is not a layer of the network",
    ),
    Case(
        "a layer without feature maps",
        lambda a, t: ["explain", str(a / "trained"), "--layer", "fc", "--out", _out(t)],
        "--layer fc gives no feature maps",
    ),
    Case(
        "data the network cannot read",
        lambda a, t: [
            "explain",
            str(a / "trained"),
            *("--dataset", f"npz:{a / 'good.npz'}", "--out", _out(t)),
        ],
        "the run's network reads 1x8x8 images of 10 classes",
    ),
]

# every case, by command: the command line's own first, then every command of nas
CATALOGUE: dict[str, list[Case]] = {
    "nas": CLI_CASES,
    "spaces": SPACES_CASES,
    "profile": PROFILE_CASES,
    "latency-table": LATENCY_TABLE_CASES,
    "train": TRAIN_CASES,
    "extract": EXTRACT_CASES,
    "search": SEARCH_CASES,
    "criteria": CRITERIA_CASES,
    "prune": PRUNE_CASES,
    "rank": RANK_CASES,
    "sweep": SWEEP_CASES,
    "transfer": TRANSFER_CASES,
    "plot": PLOT_CASES,
    "export": EXPORT_CASES,
    "compress": COMPRESS_CASES,
    "scale": SCALE_CASES,
    "explain": EXPLAIN_CASES,
}


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``nas argv``: exit code 2, one ``error:`` line, no traceback, no warning."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err + out
    assert not [str(w.message) for w in caught]
    return lines[0]


CASES = [(command, case) for command, cases in CATALOGUE.items() for case in cases]


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("command", "case"), CASES, ids=[f"{c}: {case.name}" for c, case in CASES])
def test_bad_input_is_one_line_and_changes_nothing(
    command: str, case: Case, assets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = case.argv(assets, tmp_path)
    assert argv[0] == command or command == "nas", f"a case of nas {argv[0]} under {command}"
    before = snapshot(assets, tmp_path)
    line = refused(argv, capsys)
    assert re.search(case.message, line), line
    assert snapshot(assets, tmp_path) == before  # nothing new, nothing changed
    assert not (assets / "PWNED").exists()  # no code from a file ran


def test_every_command_has_its_cases() -> None:
    """One table per command of nas (and one for the command line itself), none empty, and no
    two cases of a command under one name."""
    assert next(iter(CATALOGUE)) == "nas" and set(CATALOGUE) - {"nas"} == set(COMMANDS)
    for command, cases in CATALOGUE.items():
        names = [case.name for case in cases]
        assert names and len(set(names)) == len(names), command
    assert len(CASES) >= 120


def test_the_band_gap_is_off_the_grid() -> None:
    """The premise of the --select cases on BAND_GAP: the generic budget check accepts the
    target (above the smallest network), only the choosers' band check refuses it."""
    space = search_spaces.create("resnet20", **DIGITS)
    config = SearchConfig(width_ratios=(0.5, 1.0), tolerance=0.005, target_macs="0.524")
    band = search_budget(config, space)  # not refused
    choices = band.choices
    grid = [space.macs(dict(zip(choices, c, strict=True))) for c in product(*choices.values())]
    assert min(grid) < band.low and not [m for m in grid if band.low <= m <= band.high]
    for method in GRID_CHOOSERS:
        with pytest.raises(ConfigError, match=f"--select {method}: no"):
            check_band(band, method)


# -- a full disk -----------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.usefixtures("one_thread")
def test_a_full_disk_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every write fails with ENOSPC from the first ``metrics.json`` on (the checkpoints before
    it were written): one line saying so, and the new run directory is gone."""
    real = os.fsync
    full = {"on": False}

    def fsync(fd: int) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    import nas.engine.loop

    finish = nas.engine.loop.train_model

    def train_then_fill(*args: object, **kwargs: object) -> object:
        result = finish(*args, **kwargs)  # type: ignore[arg-type]
        full["on"] = True
        return result

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr("nas.runs.base.train_model", train_then_fill)
    out = tmp_path / "run"
    line = refused(["train", "--out", str(out), *FAST], capsys)
    assert "No space left on device" in line and "cannot write" in line
    assert not out.exists()
    assert not list(tmp_path.iterdir())


# -- two processes, one --out ----------------------------------------------------------------
def _nas(*argv: str, cwd: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen(
        [sys.executable, "-m", "nas", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.distributed
@pytest.mark.e2e
@pytest.mark.slow
def test_a_second_process_on_the_same_out_is_refused_and_the_first_is_unharmed(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    first = _nas("train", "--out", str(out), "--quiet", "--epochs", "30", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (out / "args.yaml").exists():  # the first holds the lock from before this
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    # --overwrite (it names an earlier train run) and --resume pass every check but the lock
    for flag in ("--overwrite", "--resume"):
        second = _nas("train", "--out", str(out), flag, "--quiet", "--epochs", "4", cwd=tmp_path)
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert err.strip().splitlines() == [
            f"error: another nas process is writing {out}; wait for it, or choose another --out"
        ]
    assert first.poll() is None  # still running: the test raced nothing
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    args = yaml.safe_load((out / "args.yaml").read_text())
    assert args["epochs"] == 30
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 30 and (out / "model.pt").is_file()


# -- paths users have ------------------------------------------------------------------------
@pytest.mark.e2e
@pytest.mark.usefixtures("one_thread")
def test_paths_with_spaces_and_non_ascii_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _npz(tmp_path / "my data ü.npz")
    out = tmp_path / "runs über" / "erster Lauf"
    assert main(["train", "--dataset", f"npz:{data}", "--out", str(out), *FAST]) == 0
    assert (out / "model.pt").is_file() and (out / "metrics.json").is_file()
    assert str(out) in capsys.readouterr().out
