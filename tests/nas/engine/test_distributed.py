"""nas.engine.distributed: torchrun runs of nas train, search, prune and transfer on 2 CPU
processes (gloo) against one process, a rank that dies, and the commands that refuse torchrun."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nas.engine import read_checkpoint
from nas.engine.loop import CHECKPOINT_NAME

slow = pytest.mark.slow  # several processes start, each loads torch

REPO = Path(__file__).resolve().parents[3]
ENV = os.environ | {"OMP_NUM_THREADS": "1"}


def nas(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli", *args]


def torchrun(logs: Path, *args: str, procs: int = 2) -> list[str]:
    """``torchrun --nproc-per-node procs`` of ``nas ARGS``, each rank's output in ``logs``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(procs),
        "--log-dir",
        str(logs),
        "--redirects",
        "3",
        "-m",
        "nas.cli",
        *args,
    ]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)


def rank_output(logs: Path, rank: int, stream: str) -> str:
    """What rank ``rank`` printed on ``stream`` (stdout or stderr) in torchrun's ``logs``."""
    found = sorted(logs.rglob(f"{rank}/{stream}.log"))
    assert found, f"no {stream} of rank {rank} under {logs}"
    return found[-1].read_text()


def losses(path: Path, column: str) -> list[float]:
    with open(path, newline="") as f:
        return [float(r[column]) for r in csv.DictReader(f) if r[column]]


def assert_close(a: list[float], b: list[float], rel: float) -> None:
    assert len(a) == len(b) and a, (a, b)
    for x, y in zip(a, b, strict=True):
        assert abs(x - y) <= rel * abs(x), (a, b)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained full network both runs start from (one process)."""
    out = tmp_path_factory.mktemp("baseline") / "run"
    done = run(nas("train", "--out", str(out), "--epochs", "2", "--threads", "1", "--quiet"))
    assert done.returncode == 0, done.stderr
    return out / "model.pt"


def image_folder(root: Path) -> str:
    """An image folder of 2 classes: 54 training images (43 after the validation split: the
    ranks split the epoch's last batch of 3 unevenly), 8 for validation."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 27), ("val", 4)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")
    return f"imagefolder:{root}"


@pytest.mark.distributed
@pytest.mark.e2e
@slow
@pytest.mark.parametrize("dataset", ["digits", "imagefolder"])
def test_two_processes_train_as_one_on_the_same_global_batches(
    tmp_path: Path, dataset: str
) -> None:
    """The per-epoch losses of nas train on two processes agree with one process's within
    1e-4. On an image folder each rank decodes its share of each batch only (with 2 loader
    workers each, against none in the one-process run), and every image's random crop and flip
    is the one the one-process run drew for it."""
    # from a random start a step's float rounding (a batch summed in two halves) grows by
    # orders of magnitude within an epoch at a large learning rate; at a small one it stays
    # below the 1e-4 the runs must agree within (a missing all-reduce differs by percents)
    args = ["--epochs", "2", "--lr", "0.0005", "--threads", "1", "--quiet", "--sync-bn"]
    one_args, two_args = list(args), list(args)
    if dataset == "imagefolder":
        data = ["--dataset", image_folder(tmp_path / "images"), "--image-size", "8"]
        one_args += [*data, "--batch-size", "10"]
        two_args += [*data, "--batch-size", "10", "--loader-workers", "2"]
    one = run(nas("train", "--out", str(tmp_path / "one"), *one_args))
    assert one.returncode == 0, one.stderr
    two = run(torchrun(tmp_path / "logs", "train", "--out", str(tmp_path / "two"), *two_args))
    assert two.returncode == 0, two.stderr
    for column in ("train_loss", "val_loss"):
        assert_close(
            losses(tmp_path / "one" / "summary.csv", column),
            losses(tmp_path / "two" / "summary.csv", column),
            1e-4,
        )
    # rank 0 alone writes and prints: one set of files, one result line
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )
    assert "test accuracy" in rank_output(tmp_path / "logs", 0, "stdout")
    assert rank_output(tmp_path / "logs", 1, "stdout") == ""


@pytest.mark.distributed
@slow
def test_a_search_step_of_two_processes_is_the_step_of_one(tmp_path: Path) -> None:
    """The weights' and the architecture parameters' gradients of one search step on two
    processes (each on its share of the batch, 7 and 6 images, --sync-bn) are those of one
    process on the whole batch: the architecture parameters, which live outside the network
    module, are all-reduced too, and each rank's loss enters with its share. In float64, so the
    summation order's rounding stays far below the tolerance (in float32 the gradients that
    reach the gates through BatchNorm of nearly closed channels amplify it to percents)."""
    script = str(Path(__file__).with_name("distributed_step.py"))
    one = run([sys.executable, script, str(tmp_path / "one.pt")])
    assert one.returncode == 0, one.stderr
    argv = torchrun(tmp_path / "logs", str(tmp_path / "two.pt"))
    argv[argv.index("-m", 3) : argv.index("-m", 3) + 2] = [script]  # run the script, not nas
    two = run(argv)
    assert two.returncode == 0, two.stderr + rank_output(tmp_path / "logs", 1, "stderr")
    a, b = (torch.load(tmp_path / f, weights_only=True) for f in ("one.pt", "two.pt"))
    assert len(a["arch"]) == len(b["arch"]) > 0 and len(a["weights"]) == len(b["weights"]) > 0
    for kind in ("weights", "arch"):
        for g1, g2 in zip(a[kind], b[kind], strict=True):
            scale = float(g1.abs().max()) or 1.0
            assert float((g1 - g2).abs().max()) <= 1e-8 * scale, kind
    assert_close(a["losses"], b["losses"], 1e-8)


@pytest.mark.distributed
@pytest.mark.e2e
@slow
def test_two_processes_search_like_one(tmp_path: Path, baseline: Path) -> None:
    """nas search on two processes: every epoch's weight, architecture and budget losses agree
    with one process's within 1e-4, and both find the same widths, in the budget. At small
    learning rates: a batch summed in two halves rounds differently, and at large ones (lr 0.05,
    arch-lr 0.05) training amplifies that to about 1 % by the second search epoch, as it does
    between one process at 1 and at 2 threads (Adam's first steps follow the gradients' signs,
    and hard samples' widths are discrete)."""
    args = ["--weights", str(baseline), "--warmup-epochs", "1", "--search-epochs", "2"]
    args += ["--finetune-epochs", "1", "--lr", "0.0005", "--arch-lr", "0.005"]
    args += ["--threads", "1", "--quiet", "--sync-bn"]
    args += ["--weight-sampling", "relaxed"]  # hard samples: a rounding can flip a width
    one = run(nas("search", "--out", str(tmp_path / "one"), *args))
    assert one.returncode == 0, one.stderr
    two = run(torchrun(tmp_path / "logs", "search", "--out", str(tmp_path / "two"), *args))
    assert two.returncode == 0, two.stderr
    for column in ("train_loss", "arch_loss", "budget_loss"):
        found = [losses(tmp_path / d / "summary.csv", column) for d in ("one", "two")]
        assert_close(found[0], found[1], 1e-4)
    for d in ("one", "two"):
        m = json.loads((tmp_path / d / "metrics.json").read_text())
        assert 0.5 * 0.98 <= m["macs_ratio"] <= 0.5 * 1.02
    found = [json.loads((tmp_path / d / "arch.json").read_text())["widths"] for d in ("one", "two")]
    assert found[0] == found[1]  # the same widths
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )


def _one_and_two(tmp_path: Path, name: str, *args: str) -> tuple[Path, Path]:
    """``nas ARGS`` as one process in ``tmp_path/NAME-one`` and as two in ``.../NAME-two``;
    rank 0 alone printed and wrote, one set of files."""
    one, two, logs = (tmp_path / f"{name}-{k}" for k in ("one", "two", "logs"))
    done = run(nas(*args, "--out", str(one)))
    assert done.returncode == 0, done.stderr
    done = run(torchrun(logs, *args, "--out", str(two)))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    assert rank_output(logs, 0, "stdout") and rank_output(logs, 1, "stdout") == ""
    envs = [yaml.safe_load((d / "args.yaml").read_text())["environment"] for d in (one, two)]
    assert "processes" not in envs[0] and (envs[1]["processes"], envs[1]["sync_bn"]) == (
        "2",
        "true",
    )
    return one, two


@pytest.mark.distributed
@pytest.mark.e2e
@slow
def test_two_processes_prune_and_transfer_like_one(tmp_path: Path, baseline: Path) -> None:
    """nas prune's fine-tuning (distilled from the full network) and nas transfer on two
    processes: their per-epoch losses agree with one process's within 1e-4, across the epoch's
    last batch, which the ranks split unevenly (1,293 training images, batches of 128)."""
    common = ["--threads", "1", "--quiet", "--sync-bn"]
    one, two = _one_and_two(
        tmp_path,
        "prune",
        "prune",
        "--weights",
        str(baseline),
        "--finetune-epochs",
        "3",
        "--finetune-lr",
        "0.0005",
        *common,
    )
    for column in ("train_loss", "val_loss"):
        assert_close(
            losses(one / "finetune" / "summary.csv", column),
            losses(two / "finetune" / "summary.csv", column),
            1e-4,
        )
    found = one / "arch.json"
    one, two = _one_and_two(
        tmp_path,
        "transfer",
        "transfer",
        "--arch",
        str(found),
        "--weights",
        str(one / "model.pt"),
        "--epochs",
        "3",
        "--lr",
        "0.0005",
        *common,
    )
    for column in ("train_loss", "val_loss"):
        assert_close(losses(one / "summary.csv", column), losses(two / "summary.csv", column), 1e-4)


@pytest.mark.distributed
@pytest.mark.e2e
@slow
def test_a_rank_that_dies_stops_the_others_with_one_line_and_keeps_the_checkpoint(
    tmp_path: Path,
) -> None:
    """Rank 1 is killed (SIGKILL) after the first checkpoint: rank 0 ends with one error line
    and exit code 2, the checkpoint loads, and the run resumes as one process."""
    out, logs = tmp_path / "run", tmp_path / "logs"
    tag = uuid.uuid4().hex
    args = ["train", "--out", str(out), "--epochs", "40", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(
        torchrun(logs, *args),
        cwd=REPO,
        env=ENV | {"NAS_TEST_TAG": tag},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (out / CHECKPOINT_NAME).is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (out / CHECKPOINT_NAME).is_file(), "no checkpoint was written"
    victim = _rank_pid(tag, 1)
    os.kill(victim, signal.SIGKILL)
    proc.communicate(timeout=300)
    assert proc.returncode != 0
    err = rank_output(logs, 0, "stderr").strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: rank 0 stopped"), err
    assert "Traceback" not in rank_output(logs, 0, "stderr")
    state = read_checkpoint(out / CHECKPOINT_NAME, 3, "training")
    assert 1 <= state["epoch"] < 40
    # resumed by one process (another number of processes), it finishes
    again = run(nas(*args, "--resume"))
    assert again.returncode == 0, again.stderr
    assert len(losses(out / "summary.csv", "train_loss")) == 40


def _rank_pid(tag: str, rank: int) -> int:
    """The process of rank ``rank`` of the torchrun started with ``NAS_TEST_TAG=tag``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"NAS_TEST_TAG={tag}".encode() in env and f"RANK={rank}".encode() in env:
            return int(proc.name)
    raise AssertionError(f"no process of rank {rank}")


@pytest.mark.distributed
@slow
def test_commands_that_do_not_run_as_several_processes_refuse_torchrun(tmp_path: Path) -> None:
    for command in ("sweep", "latency-table"):
        logs, out = tmp_path / f"logs-{command}", tmp_path / command
        done = run(torchrun(logs, command, "--out", str(out), "--quiet"))
        assert done.returncode != 0
        for rank in (0, 1):
            err = rank_output(logs, rank, "stderr").strip().splitlines()
            assert err == [
                f"error: nas {command} does not run as several processes (torchrun started 2); "
                "run it as one process"
            ]
        assert not out.exists()


def test_one_process_steps_are_left_as_they_are() -> None:
    """Without a process group, a step's gradients are untouched and its stats stacked."""
    from nas.engine.distributed import active, reduce_step, shard, share

    assert not active()
    x, y = torch.randn(6, 3), torch.arange(6)
    assert shard(x, y)[2] == 6 and shard(x, y)[0] is x
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    assert share(3, 6) == 1.0  # a loss is back-propagated as it is
    stats = reduce_step([p], torch.tensor(1.5), torch.tensor(4))
    assert torch.equal(p.grad, torch.full((3,), 2.0))
    assert stats.tolist() == [1.5, 4.0]


@pytest.mark.parametrize("rank", [0, 2])
def test_each_rank_steps_on_its_rows_and_skips_a_batch_too_small_to_share(
    rank: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a group of 3 ranks, a training epoch of 11 images in batches of 3: every rank gets
    the same batches (from an in-memory loader, the whole batch, of which shard keeps its row;
    from a loader that decodes per rank, its row only) and skips the last batch of 2, in which
    one rank would have nothing to compute on."""
    from nas.data import TensorLoader
    from nas.data.loaders import SampleLoader
    from nas.engine import distributed

    monkeypatch.setitem(distributed._GROUP, "active", True)
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    monkeypatch.setattr(distributed, "rank", lambda: rank)
    images, labels = torch.arange(11.0).view(11, 1, 1, 1), torch.arange(11)
    dataset = torch.utils.data.TensorDataset(images, labels)
    loaders: list[TensorLoader | SampleLoader] = [
        TensorLoader(images, labels, 3, True, None, seed=5),
        SampleLoader(dataset, labels.tolist(), (1, 1, 1), 3, True, seed=5),
    ]
    for loader in loaders:
        steps = [distributed.shard(x, y) for x, y in distributed.batches(loader)]
        assert len(steps) == 3 and len(loader) == 4
        for x, y, n in steps:
            assert n == 3 and x.shape[0] == y.shape[0] == 1
            assert int(x.flatten()[0]) == int(y[0])  # its own image and label
