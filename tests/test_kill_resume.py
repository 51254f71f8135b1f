"""Kill anywhere, resume exactly: ``nas train``, ``nas search``, ``nas prune`` and ``nas sweep``
are killed with SIGKILL at several points (during an epoch, while a checkpoint is being
written, while the final network is exported), resumed, and must end with the files of an
uninterrupted run of the same seed and thread count: ``metrics.json`` (timings aside),
``arch.json`` and ``model.pt`` identical.

Each case runs real ``nas`` processes (about a minute each on 2 cores): marked slow, run in CI.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TINY_SEARCH = [
    *("--baseline-epochs", "2", "--warmup-epochs", "1", "--search-epochs", "2"),
    *("--finetune-epochs", "2", "--quiet", "--threads", "1"),
    *("--population", "4", "--generations", "1"),  # the default chooser, small
]
COMMANDS: dict[str, list[str]] = {
    "train": ["train", "--epochs", "4", "--quiet", "--threads", "1"],
    "search": ["search", *TINY_SEARCH],
    "prune": [
        *("prune", "--baseline-epochs", "2", "--finetune-epochs", "3", "--compare"),
        *("--criterion", "chip", "--score-images", "64", "--quiet", "--threads", "1"),
    ],
    "sweep": ["sweep", "--trials", "2", "--budgets", "0.3,0.6", "--no-uniform", *TINY_SEARCH],
}
# what "resume" means for each: train and search take --resume; a sweep resumes when re-run
RESUME = {"train": ["--resume"], "search": ["--resume"], "prune": ["--resume"], "sweep": []}

Watch = Callable[[Path], bool]


def _start(argv: list[str], out: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "nas", *argv, "--out", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _files(out: Path) -> list[str]:
    return [p.name for p in out.rglob("*")] if out.exists() else []


def writing_checkpoint(out: Path) -> bool:
    """A checkpoint's temporary file exists: the process is inside ``save_checkpoint``."""
    return any(n.startswith(".") and "checkpoint" in n for n in _files(out))


def exporting(out: Path) -> bool:
    """The final network is being written (its temporary file, or the TorchScript export)."""
    return any(n.startswith((".model.pt.", ".model.ts.")) for n in _files(out))


def after(seconds: float) -> Watch:
    start = time.monotonic()
    return lambda out: time.monotonic() - start >= seconds


def run_until(argv: list[str], out: Path, watch: Watch, timeout: float = 600) -> bool:
    """Run ``nas argv --out out``; SIGKILL it as soon as ``watch(out)`` holds. True if killed,
    False if it finished first (then it must have succeeded)."""
    proc = _start(argv, out)
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if watch(out):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        assert time.monotonic() < deadline, "the run did not finish in time"
        time.sleep(0.002)
    _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    return False


def finished(out: Path) -> dict[str, Any]:
    """What must not depend on interruptions: metrics (timings aside), widths, weights."""
    metrics = json.loads((out / "metrics.json").read_text())
    # timings, and how many trials were interrupted (and retried) on the way
    drop = {k for k in metrics if k.endswith(("seconds", "_s"))} | {"failed"}
    state = {}
    for path in sorted(out.rglob("model.pt")):
        tensors = torch.load(path, map_location="cpu", weights_only=True)
        state[str(path.relative_to(out))] = {k: v.clone() for k, v in tensors.items()}
    return {
        "metrics": {k: v for k, v in metrics.items() if k not in drop},
        "arch": sorted((str(p.relative_to(out)), p.read_text()) for p in out.rglob("arch.json")),
        "models": state,
    }


def same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["metrics"] == b["metrics"]
    assert a["arch"] == b["arch"]
    assert a["models"].keys() == b["models"].keys()
    for name, tensors in a["models"].items():
        other = b["models"][name]
        assert tensors.keys() == other.keys(), name
        for key, value in tensors.items():
            assert torch.equal(value, other[key]), (name, key)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], float]]:
    """Each command run without interruption: its results and how long it took."""
    out = {}
    for name, argv in COMMANDS.items():
        d = tmp_path_factory.mktemp(f"straight-{name}") / "run"
        start = time.monotonic()
        assert not run_until(argv, d, lambda _: False)
        out[name] = (finished(d), time.monotonic() - start)
    return out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_killed_anywhere_and_resumed_gives_the_uninterrupted_result(
    command: str, reference: dict[str, tuple[dict[str, Any], float]], tmp_path: Path
) -> None:
    expected, duration = reference[command]
    rng = random.Random(f"kill-{command}")
    out = tmp_path / "run"
    # kill points: two random moments, then inside a checkpoint write, then during the export
    points: list[tuple[str, Callable[[], Watch]]] = [
        ("random", lambda: after(rng.uniform(0.3, 0.6) * duration)),
        ("random", lambda: after(rng.uniform(0.2, 0.5) * duration)),
        ("checkpoint", lambda: writing_checkpoint),
        ("export", lambda: exporting),
    ]
    argv, killed = COMMANDS[command], []
    for name, make_watch in points:
        resume = RESUME[command] if (out / "args.yaml").is_file() else []
        if run_until([*argv, *resume], out, make_watch()):
            killed.append(name)
    if "export" in killed or len(killed) < len(points):  # not finished yet
        assert not run_until([*argv, *RESUME[command]], out, lambda _: False)
    print(f"{command}: killed at {killed}")
    assert killed.count("random") == 2 and "checkpoint" in killed  # the harness interrupted
    same(finished(out), expected)
