"""Every command on a traced space (a torchvision model found by tracing), as a user runs them:
a short search, pruning with every criterion, the criteria comparison, a latency table with
depthwise convolutions and a latency-budgeted search on it, transfer, and the saved network
reloaded without pickle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nas
import search_spaces
from nas.cli.main import main
from nas.cost.knapsack import CostTerm, most_probable_in_band
from nas.cost.macs import mac_cost_terms
from tests.conftest import synthetic_latency_table

SPACE = "torchvision:mobilenet_v3_small"
SHORT = ("--baseline-epochs", "1", "--finetune-epochs", "1", "--threads", "1", "--quiet")
SEARCH: tuple[str, ...] = (*SHORT, "--warmup-epochs", "1", "--search-epochs", "1")
SEARCH = (*SEARCH, "--population", "4", "--generations", "1")  # the default chooser, small


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("traced") / "search"
    assert main(["search", "--space", SPACE, *SEARCH, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
@pytest.mark.e2e
def test_a_search_on_a_traced_space_delivers_a_smaller_network(searched: Path) -> None:
    metrics = json.loads((searched / "metrics.json").read_text())
    assert 0.4 < metrics["macs_ratio"] < 0.6
    spec = search_spaces.WidthSpec.load(searched / "arch.json")
    assert spec.space == SPACE
    model = nas.load_model(searched)  # arch.json + a state_dict: no pickle
    state = torch.load(searched / "model.pt", weights_only=True)
    assert set(state) == set(model.state_dict())
    x = torch.randn(2, 1, 8, 8)
    scripted = torch.jit.load(str(searched / "model.ts"))
    with torch.no_grad():
        assert torch.allclose(scripted(x), model.eval()(x), atol=1e-5)
    assert nas.cost.macs.measure_macs(model, (1, 8, 8)) == spec.macs()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("criterion", ["l1", "bn", "chip"])
def test_pruning_a_traced_space(criterion: str, tmp_path: Path) -> None:
    out = tmp_path / criterion
    argv = ["prune", "--space", SPACE, "--criterion", criterion, *SHORT, "--out", str(out)]
    assert main([*argv, "--allocation", "global", "--target-macs", "0.5"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.45 < metrics["macs_ratio"] < 0.55


@pytest.mark.slow
@pytest.mark.e2e
def test_the_criteria_comparison_on_a_traced_space(searched: Path, tmp_path: Path) -> None:
    out = tmp_path / "criteria"
    weights = searched / "baseline" / "model.pt"
    argv = ["criteria", "compare", "--space", SPACE, "--weights", str(weights)]
    assert main([*argv, "--threads", "1", "--out", str(out)]) == 0


@pytest.mark.slow
@pytest.mark.e2e
def test_transfer_of_a_traced_architecture(searched: Path, tmp_path: Path) -> None:
    out = tmp_path / "transfer"
    argv = ["transfer", "--arch", str(searched / "arch.json"), "--dataset", "digits"]
    argv += ["--weights", str(searched / "model.pt"), "--image-size", "12", "--quiet"]
    assert main([*argv, "--epochs", "1", "--threads", "1", "--out", str(out)]) == 0
    spec = search_spaces.WidthSpec.load(out / "arch.json")
    assert spec.space == SPACE and spec.input_size == (12, 12)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_per_input_gates_on_a_traced_space(tmp_path: Path) -> None:
    """conditional-gumbel on MobileNetV3: its conditional network (gates on each unit's first
    writer, reloaded and run from TorchScript; --static extracts as every strategy does,
    tested on ResNet-20)."""
    from nas.gates.deploy import load_conditional

    argv = ["search", "--space", SPACE, "--strategy", "conditional-gumbel", *SEARCH]
    out = tmp_path / "conditional"  # (the threshold's calibration: test_search.py, ResNet-20)
    assert main([*argv, "--no-calibrate-gates", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conditional"] is True and 0 < metrics["avg_macs_ratio"] < 1
    assert metrics["gate_macs"] > 0
    model = load_conditional(out / "conditional")
    scripted = torch.jit.load(str(out / "conditional" / "model.ts"))
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-5)


def test_a_latency_budget_on_depthwise_convolutions() -> None:
    space = search_spaces.create(SPACE, num_classes=10, input_size=(32, 32))
    table = synthetic_latency_table(space)
    kinds = {e.kind for e in table.entries.values()}
    assert {"conv", "gconv", "linear"} <= kinds
    cost = nas.cost.latency.LatencyCost(space, table=table)
    full = cost.exact(space.full_widths())
    narrow = dict(space.full_widths())
    depthwise = [la for la in space.layers if la.groups > 1 and la.out_unit is not None]
    for la in depthwise:
        assert la.out_unit is not None
        narrow[la.out_unit] = space.max_widths[la.out_unit] // 2
    assert depthwise and cost.exact(narrow) < full  # the depthwise convolutions' widths priced
    assert cost.exact(space.uniform_widths(0.5)) < cost.exact(narrow)


def test_the_projection_on_a_chain_network_promotes_hubs() -> None:
    """VGG's units form one chain: without promoting hubs the projection would enumerate every
    combination of the chain's choices."""
    import time

    space = search_spaces.create("torchvision:vgg11_bn", num_classes=10, input_size=(32, 32))
    choices = {
        u.name: sorted({max(1, u.max_width * k // 8) for k in range(1, 9)}) for u in space.units
    }
    log_probs = {u: torch.zeros(len(c)) for u, c in choices.items()}
    terms: list[CostTerm] = mac_cost_terms(space)
    target = 0.5 * space.macs()
    start = time.perf_counter()
    widths = most_probable_in_band(
        terms,
        [(u.name, u.kind) for u in space.units],
        choices,
        log_probs,
        0.98 * target,
        1.02 * target,
    )
    assert time.perf_counter() - start < 20
    assert widths is not None and 0.98 * target <= space.macs(widths) <= 1.02 * target


@pytest.mark.parametrize("name", ["squeezenet1_1", "densenet121"])
def test_a_latency_table_prices_layers_that_read_concatenations(name: str) -> None:
    """Such a layer is timed over its total input width and priced per input segment to first
    order: exact at full width, wherever one input unit is narrowed, and everywhere the table is
    linear in the input width (the synthetic table is)."""
    from nas.cost.latency import interpolate

    space = search_spaces.create(f"torchvision:{name}", num_classes=10, input_size=(32, 32))
    table = synthetic_latency_table(space)
    cost = nas.cost.latency.LatencyCost(space, table=table)
    readers = [la for la in space.layers if la.kind == "conv" and len(la.inputs) > 1]
    assert readers

    def reference(widths: dict[str, int]) -> float:  # each layer at its total input width
        total = table.fixed_ms
        for la in space.layers:
            if la.kind not in ("conv", "linear"):
                continue
            grid_in, grid_out, ms = table.entries[table.layers[la.name]].tensors()
            if la.groups > 1:
                c_in = la.in_channels // la.groups
            else:
                c_in = sum(widths[s.unit] if s.unit else s.channels for s in la.inputs)
            c_out = widths[la.out_unit] if la.out_unit else la.out_channels
            value = interpolate(grid_in, grid_out, ms, torch.tensor(c_in), torch.tensor(c_out))
            total += table.scale * float(value)
        return total

    full = space.full_widths()
    assert cost.full() == pytest.approx(reference(full), rel=1e-12)
    one = dict(full)
    unit = next(s.unit for s in readers[-1].inputs if s.unit is not None)
    one[unit] = max(1, full[unit] // 3)
    assert cost.exact(one) == pytest.approx(reference(one), rel=1e-12)
    assert cost.exact(one) < cost.full()
    for widths in nas.cost.timing.random_specs(space, 3, seed=0):
        assert cost.exact(widths) == pytest.approx(reference(widths), rel=1e-9)
    for la in readers:  # timed over the whole concatenation
        assert table.entries[table.layers[la.name]].grid_in[-1] == la.in_channels


def test_profile_lists_the_frozen_channels(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "profile",
        "torchvision:shufflenet_v2_x0_5",
        "--input-size",
        "32",
        "--num-classes",
        "10",
    ]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    frozen = [g for g in report["frozen"] if g["reason"] != "network output"]
    assert len(frozen) == 21 and all(g["writers"] and g["channels"] > 0 for g in frozen)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "frozen   21 groups kept at full width" in text
    assert "view reshapes the channel axis at stage2.0" in text
