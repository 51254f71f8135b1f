"""nas.jobs.export: nas export, and --export onnx on the commands that deliver a network."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import search_spaces
from tests.nas.conftest import run

onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")


def _extracted(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    space = search_spaces.create("resnet20_b", num_classes=10, in_channels=1, input_size=(8, 8))
    tmp_path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(space.build().state_dict(), tmp_path / "full.pt")
    space.spec(space.uniform_widths(0.5)).save(tmp_path / "arch.json")
    out = tmp_path / "small"
    argv = ["extract", "--weights", str(tmp_path / "full.pt")]
    argv += ["--arch", str(tmp_path / "arch.json")]
    code, _, err = run(capsys, *argv, "--out", str(out), *extra)
    assert code == 0, err
    return out


def _onnx_output(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(y)


@pytest.mark.e2e
def test_extract_with_export_writes_an_onnx_network_onnx_runtime_agrees_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import nas

    out = _extracted(tmp_path, capsys, "--export", "onnx")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["onnx_max_abs_diff"] <= 1e-4 and metrics["onnx_opset"] >= 18
    model = nas.load_model(out)
    for n in (1, 5):  # the batch axis is dynamic
        x = torch.randn(n, 1, 8, 8)
        with torch.no_grad():
            assert (_onnx_output(out / "model.onnx", x) - model(x)).abs().max() <= 1e-4
    # nas export on a run written without it: the same file, metrics.json gains the figures
    again = _extracted(tmp_path / "b", capsys)
    assert not (again / "model.onnx").exists()
    code, printed, _ = run(capsys, "export", str(again), "--format", "onnx")
    assert code == 0 and "model.onnx (opset" in printed
    assert "onnx_max_abs_diff" in json.loads((again / "metrics.json").read_text())


def _one_error_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for w in words:
        assert w in lines[0], err


@pytest.mark.e2e
def test_nas_export_refuses_what_it_cannot_export_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "export", str(empty))
    assert code == 2
    _one_error_line(err, "holds no nas run")
    conditional = tmp_path / "cond"
    conditional.mkdir()
    (conditional / "conditional.json").write_text("{}")
    code, _, err = run(capsys, "export", str(conditional))
    assert code == 2
    _one_error_line(err, "conditional", "--static")
    code, _, err = run(capsys, "export", str(empty), "--format", "tflite")
    assert code == 2 and "tflite" in err
    out = _extracted(tmp_path, capsys)
    (out / "model.onnx").mkdir()  # where the file must go, something that cannot be replaced
    code, _, err = run(capsys, "export", str(out))
    assert code == 2
    _one_error_line(err, "model.onnx")
    assert not [p for p in out.iterdir() if p.name.startswith(".model.onnx")]  # no partial file
    assert not (tmp_path / "empty" / "model.onnx").exists()


def test_without_the_extra_the_flag_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    out = tmp_path / "run"
    code, _, err = run(capsys, "search", "--export", "onnx", "--out", str(out))
    assert code == 2
    _one_error_line(err, 'pip install -e ".[onnx]"')
    assert not out.exists()


def test_a_conditional_network_is_refused_before_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["search", "--strategy", "conditional-gumbel", "--export", "onnx", "--out", str(out)]
    code, _, err = run(capsys, *argv)
    assert code == 2
    _one_error_line(err, "conditional", "--static")
    assert not out.exists()


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_gate_strategys_static_network_is_exported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["search", "--strategy", "batch-shaping", "--static", "--export", "onnx"]
    argv += ["--baseline-epochs", "1", "--warmup-epochs", "1", "--search-epochs", "1"]
    argv += ["--finetune-epochs", "1", "--population", "4", "--generations", "1", "--quiet"]
    code, printed, err = run(capsys, *argv, "--out", str(out))
    assert code == 0, err
    assert "exported" in printed and (out / "model.onnx").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["onnx_max_abs_diff"] <= 1e-4
