"""``nas prune``: the files a search writes, the budget, the widths of a spec, the Python API."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import nas
import search_spaces
from nas.cli import main
from nas.cost import count_model_params
from nas.data import DataBundle, TensorLoader
from nas.extraction import load_model
from search_spaces import WidthSpec
from tests.nas.jobs.conftest import _strict_json

slow = pytest.mark.slow
pytestmark = pytest.mark.usefixtures("one_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = ["--quiet", "--baseline-epochs", "1", "--finetune-epochs", "1", "--threads", "1"]
METRIC_KEYS = {
    "dataset",
    "space",
    "criterion",
    "allocation",
    "baseline_acc",
    "pruned_acc",
    "pruned_val_acc",
    "oneshot_val_acc",
    "macs",
    "flops",
    "macs_ratio",
    "target_macs",
    "params",
    "scoring_seconds",
    "widths",
}


@pytest.mark.e2e
@slow
def test_prune_writes_what_a_search_writes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["prune", *FAST, "--criterion", "chip", "--allocation", "global", "--compare"]
    assert main([*argv, "--target-macs", "0.4", "--score-images", "64", "--out", str(out)]) == 0
    for name in ("arch.json", "model.pt", "model.ts", "scores.pt", "args.yaml"):
        assert (out / name).is_file(), name
    assert (out / "widths.png").read_bytes().startswith(PNG_MAGIC)
    metrics = _strict_json(out / "metrics.json")
    assert set(metrics) >= METRIC_KEYS | {"uniform_acc", "uniform_macs"}
    assert metrics["criterion"] == "chip" and metrics["allocation"] == "global"
    assert metrics["reference"] == "uniform widths of the same MACs, chip channels"
    assert abs(metrics["macs"] / (0.4 * metrics["baseline_macs"]) - 1) <= 0.02
    assert abs(metrics["uniform_macs"] / (0.4 * metrics["baseline_macs"]) - 1) <= 0.02
    assert metrics["flops"] == 2 * metrics["macs"]
    # the saved network is the one measured: rebuilt from spec + state_dict
    spec = WidthSpec.load(out / "arch.json")
    model = load_model(out)
    assert spec.macs() == metrics["macs"] and dict(spec.widths) == metrics["widths"]
    assert count_model_params(model) == metrics["params"]
    scores = torch.load(out / "scores.pt", weights_only=True)
    assert {u.name for u in spec.get_space().units} == set(scores)
    with open(out / "summary.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["unit"] for r in rows] == [u.name for u in spec.get_space().units]
    assert all(int(r["width"]) == spec.widths[r["unit"]] for r in rows)
    args = yaml.safe_load((out / "args.yaml").read_text())
    assert args["command"] == "prune" and args["criterion"] == "chip"
    # the fine-tuning options are the search's: one declaration, the same flags
    assert args["finetune_epochs"] == 1 and args["kd_alpha"] == 0.9
    # the resolved configuration runs again as a --config file
    again = tmp_path / "again"
    assert main(["prune", "--config", str(out / "args.yaml"), "--quiet", "--out", str(again)]) == 0
    assert _strict_json(again / "metrics.json")["widths"] == metrics["widths"]


@pytest.mark.e2e
@slow
def test_compare_with_uniform_allocation_says_its_reference_is_random_channels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["prune", *FAST, "--criterion", "l1", "--allocation", "uniform", "--compare"]
    assert main([*argv, "--out", str(out)]) == 0
    metrics = _strict_json(out / "metrics.json")
    assert metrics["reference"] == "same widths, seeded random channels (seed 0)"
    assert metrics["uniform_widths"] == metrics["widths"]  # the same widths...
    printed = capsys.readouterr().out
    assert f"l1/uniform {metrics['pruned_acc']:.2f} %" in printed
    assert f"; random channels {metrics['uniform_acc']:.2f} %" in printed  # ...other channels
    assert "uniform width" not in printed


@pytest.mark.e2e
@slow
def test_prune_with_the_widths_of_a_search(tmp_path: Path) -> None:
    space = search_spaces.create("resnet20", num_classes=10, in_channels=1, input_size=(8, 8))
    widths = space.uniform_widths_for_macs(0.5)
    widths["layer1.0.conv1"] = 3
    spec = space.spec(widths)
    spec.save(tmp_path / "arch.json")
    out = tmp_path / "run"
    argv = ["prune", *FAST, "--allocation", "spec", "--arch", str(tmp_path / "arch.json")]
    target = f"{spec.macs_ratio():.4f}"
    assert main([*argv, "--target-macs", target, "--out", str(out)]) == 0
    assert WidthSpec.load(out / "arch.json").widths == spec.widths


@pytest.mark.e2e
@slow
def test_prune_of_a_users_torchvision_resnet(digits: DataBundle) -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)  # what the space does for small inputs
    model.maxpool = nn.Identity()
    assert isinstance(digits.train, TensorLoader) and isinstance(digits.val, TensorLoader)
    x, y = digits.train.images[:128], digits.train.labels[:128]
    train = DataLoader(
        TensorDataset(x, y),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    val = DataLoader(TensorDataset(digits.val.images[:128], digits.val.labels[:128]), 128)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = nas.PruneConfig(finetune_epochs=1)
    result = nas.prune(
        model, train, val, criterion="fpgm", allocation="global", target_macs=0.5, config=config
    )
    assert isinstance(result.model, torchvision.models.ResNet)
    assert result.spec.space == "resnet18"
    assert abs(result.metrics["macs_ratio"] - 0.5) <= 0.01
    assert count_model_params(result.model) == result.metrics["params"]
    with torch.no_grad():
        assert result.model.eval()(x[:4]).shape == (4, 10)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # the user's model untouched
