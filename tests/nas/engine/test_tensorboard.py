"""nas.engine.tensorboard: --tensorboard's event files, read back with TensorBoard's own reader
and checked against the summary.csv files they mirror."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.nas.conftest import run

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")


def _events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _check_mirror(summary: Path, folder: Path) -> None:
    """Every numeric column of every row is a scalar of its name at the row's epoch."""
    acc = _events(folder)
    rows = _rows(summary)
    numeric = [k for k, v in rows[0].items() if k != "epoch" and _number(v) is not None]
    assert numeric and set(numeric) <= set(acc.Tags()["scalars"])
    for key in numeric:
        events = acc.Scalars(key)
        want = [(int(r["epoch"]), _number(r[key])) for r in rows if _number(r[key]) is not None]
        assert [e.step for e in events] == [s for s, _ in want], key
        for e, (_, v) in zip(events, want, strict=True):
            assert e.value == pytest.approx(v, rel=1e-4, abs=1e-6), key


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@pytest.mark.e2e
@pytest.mark.slow
def test_a_search_mirrors_every_summary_and_logs_the_width_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import search_spaces

    out = tmp_path / "run"
    argv = ["search", "--tensorboard", "--baseline-epochs", "2", "--warmup-epochs", "1"]
    argv += ["--search-epochs", "2", "--finetune-epochs", "2", "--population", "4"]
    argv += ["--generations", "1", "--quiet", "--out", str(out)]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    assert sorted(p.name for p in (out / "tb").iterdir()) == ["baseline", "finetune", "search"]
    _check_mirror(out / "baseline" / "summary.csv", out / "tb" / "baseline")
    _check_mirror(out / "finetune" / "summary.csv", out / "tb" / "finetune")
    _check_mirror(out / "summary.csv", out / "tb" / "search")
    search = _events(out / "tb" / "search")
    tags = search.Tags()
    # the temperature, the budget multiplier, the expected MACs ratio, losses and accuracies
    for key in ("tau", "multiplier", "expected_macs_ratio", "train_loss", "val_acc", "lr"):
        assert key in tags["scalars"]
    units = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    epochs = len(_rows(out / "summary.csv"))
    for u in units.units:
        widths = search.Scalars(f"units/expected_width/{u.name}")
        probs = search.Scalars(f"units/max_prob/{u.name}")
        assert len(widths) == len(probs) == epochs
        assert all(1 <= e.value <= u.max_width for e in widths)
        assert all(0 < e.value <= 1 for e in probs)
        histogram = search.Histograms(f"widths/{u.name}")
        assert len(histogram) == epochs
        assert histogram[-1].histogram_value.num == pytest.approx(1.0)  # a distribution


def test_without_the_extra_the_flag_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails as if not installed
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--tensorboard", "--out", str(out))
    assert code == 2
    assert err.strip().startswith("error:") and 'pip install -e ".[tensorboard]"' in err
    assert not out.exists()


@pytest.mark.e2e
def test_a_resumed_training_logs_each_epoch_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second process on the same run (--resume) re-logs every row and purges what the
    first one logged: TensorBoard shows each epoch once."""
    out = tmp_path / "run"
    argv = ["train", "--tensorboard", "--epochs", "2", "--quiet", "--out", str(out)]
    assert run(capsys, *argv)[0] == 0
    assert run(capsys, *argv, "--resume")[0] == 0
    assert len(list((out / "tb" / "train").iterdir())) == 2  # one event file per process
    _check_mirror(out / "summary.csv", out / "tb" / "train")
