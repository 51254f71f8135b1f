"""The GCN predictor: formula, losses, fitting a known ranking, determinism, persistence."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

import predictors.gcn as gcn_module
import search_spaces
from nas.errors import WeightsError
from predictors import (
    GCN,
    GraphEncoder,
    Predictor,
    PredictorConfig,
    fit_predictor,
    rank_correlations,
    ranking_loss,
)
from predictors.gcn import FORMAT, GraphConv
from search_spaces import SearchSpace

pytestmark = pytest.mark.usefixtures("one_thread")


def _sample(space: SearchSpace, n: int, seed: int) -> torch.Tensor:
    """``n`` random assignments, every width between a quarter of its maximum and the maximum."""
    top = torch.tensor([u.max_width for u in space.units])
    low = (top // 4).clamp_min(1)
    g = torch.Generator().manual_seed(seed)
    return low + (torch.rand(n, len(top), generator=g) * (top - low + 1)).long()


def _synthetic(space: SearchSpace, widths: torch.Tensor) -> torch.Tensor:
    """A known score: per-unit weighted log width ratios plus a stem x head interaction."""
    top = torch.tensor([float(u.max_width) for u in space.units], dtype=torch.float64)
    weights = torch.rand(len(top), generator=torch.Generator().manual_seed(100)) + 0.5
    log_ratio = torch.log(widths.double() / top)
    return (log_ratio * weights).sum(1) + 0.5 * log_ratio[:, 0] * log_ratio[:, -1]


@pytest.fixture(scope="module")
def data() -> tuple[GraphEncoder, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    space = search_spaces.create("resnet20_b")
    train, test = _sample(space, 300, 1), _sample(space, 200, 2)
    encoder = GraphEncoder.for_space(space)
    return encoder, train, _synthetic(space, train), test, _synthetic(space, test)


def _small_fit(seed: int = 0, epochs: int = 4) -> Predictor:
    space = search_spaces.create("resnet20")
    widths = _sample(space, 40, 3)
    config = PredictorConfig(hidden=16, epochs=epochs, batch_size=16, seed=seed)
    return fit_predictor(GraphEncoder.for_space(space), widths, _synthetic(space, widths), config)


def test_config_validation() -> None:
    assert PredictorConfig().validate() == PredictorConfig()
    for bad in (
        {"layers": 1},
        {"layers": 5},
        {"loss": "l1"},
        {"batch_size": 1},
        {"dropout": 1.0},
        {"lr": 0.0},
        {"epochs": 0},
    ):
        with pytest.raises(ValueError):
            PredictorConfig(**bad).validate()


def test_graph_conv_is_a_hat_h_w_plus_b() -> None:
    torch.manual_seed(0)
    conv = GraphConv(5, 7)
    with torch.no_grad():
        conv.bias.normal_()
    h, adj = torch.randn(3, 4, 5), torch.rand(4, 4)  # (B, N, F)
    expected = adj @ h @ conv.linear.weight.T + conv.bias
    got = conv(h.transpose(0, 1), adj).transpose(0, 1)  # GraphConv works node-major
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("layers", [2, 3, 4])
def test_gcn_scores_every_assignment(layers: int) -> None:
    space = search_spaces.create("resnet20_b")
    encoder = GraphEncoder.for_space(space)
    torch.manual_seed(0)
    model = GCN(
        encoder.num_features,
        hidden=8,
        layers=layers,
        dropout=0.25,
        output_index=encoder.output_index,
    )
    assert len(model.convs) == layers
    scores = model(encoder.features(_sample(space, 5, 0)), encoder.adjacency)
    assert scores.shape == (5,) and len(set(scores.tolist())) == 5
    scores.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_ranking_loss() -> None:
    pred = torch.tensor([0.0, 1.0, 2.0])
    sp = torch.nn.functional.softplus
    manual = (sp(torch.tensor(-1.0)) + sp(torch.tensor(-2.0)) + sp(torch.tensor(-1.0))) / 3
    torch.testing.assert_close(ranking_loss(pred, torch.tensor([0.0, 1.0, 2.0])), manual)
    reversed_ = ranking_loss(pred, torch.tensor([2.0, 1.0, 0.0]))
    assert float(reversed_) > float(manual)
    ties = pred.clone().requires_grad_()
    loss = ranking_loss(ties, torch.ones(3))
    loss.backward()
    assert float(loss.detach()) == 0 and ties.grad is not None


@pytest.mark.slow  # trains the GCN
def test_learns_a_known_ranking_with_the_rank_loss(data: tuple[torch.Tensor, ...]) -> None:
    encoder, train, train_scores, test, test_scores = data
    assert isinstance(encoder, GraphEncoder)
    predictor = fit_predictor(encoder, train, train_scores, PredictorConfig(loss="rank"))
    corr = rank_correlations(predictor.predict(test), test_scores)
    assert corr["kendall_tau"] > 0.9 and corr["spearman"] > 0.97


@pytest.mark.slow  # trains the GCN
def test_learns_a_known_ranking_with_the_mse_loss(data: tuple[torch.Tensor, ...]) -> None:
    encoder, train, train_scores, test, test_scores = data
    assert isinstance(encoder, GraphEncoder)
    predictor = fit_predictor(encoder, train, train_scores, PredictorConfig(loss="mse"))
    predicted = predictor.predict(test)
    corr = rank_correlations(predicted, test_scores)
    assert corr["kendall_tau"] > 0.7 and corr["spearman"] > 0.9
    # standardised targets: the predictions are back on the scale of the scores
    assert abs(float(predicted.mean() - test_scores.mean())) < 0.5 * float(test_scores.std())


def test_fitting_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, b, c = _small_fit(seed=0), _small_fit(seed=0), _small_fit(seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    widths = _sample(a.space, 50, 9)
    assert torch.equal(a.predict(widths), b.predict(widths))
    assert not torch.equal(a.predict(widths), c.predict(widths))


def test_every_step_uses_exactly_its_own_batch_gradient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each optimiser step must see, in ``p.grad``, exactly the gradient of its own batch: the
    tensor hooks record what every backward pass contributes, and the wrapped ``step`` compares.
    Gradients accumulated over steps (no zeroing) or zeroed between backward and step fail."""
    contributions: dict[torch.nn.Parameter, list[torch.Tensor]] = {}
    steps: list[int] = []
    norms: list[float] = []
    build, step = gcn_module._model, torch.optim.Adam.step

    def hooked_model(encoder: GraphEncoder, config: PredictorConfig) -> GCN:
        model = build(encoder, config)
        for p in model.parameters():
            contributions[p] = []
            p.register_hook(lambda grad, p=p: contributions[p].append(grad.detach().clone()))
        return model

    def checked_step(self: torch.optim.Adam, *args: object, **kwargs: object) -> object:
        for group in self.param_groups:
            for p in group["params"]:
                assert len(contributions[p]) == 1, "one backward pass per step"
                assert p.grad is not None, "gradient cleared between backward and step"
                assert torch.equal(p.grad, contributions[p][0]), (
                    "p.grad is not this step's gradient (accumulated over steps, or zeroed)"
                )
                norms.append(float(p.grad.abs().sum()))
                contributions[p].clear()
        steps.append(1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(gcn_module, "_model", hooked_model)
    monkeypatch.setattr(torch.optim.Adam, "step", checked_step)
    _small_fit(epochs=3)  # 40 samples, batches of 16: 3 steps per epoch
    assert len(steps) == 9 and max(norms) > 0  # every step checked, real gradients


def test_predict_handles_10000_assignments() -> None:
    predictor = _small_fit()
    widths = _sample(predictor.space, 10_000, 5)
    scores = predictor.predict(widths)
    assert scores.shape == (10_000,) and bool(scores.isfinite().all())
    torch.testing.assert_close(predictor.predict(widths[:500], batch_size=37), scores[:500])
    assert predictor.predict(widths[:0]).shape == (0,)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    predictor = _small_fit()
    path = tmp_path / "sub" / "predictor.pt"
    predictor.save(path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["space"] == "resnet20"
    assert raw["config"]["hidden"] == 16 and isinstance(raw["state_dict"], dict)
    widths = _sample(predictor.space, 100, 7)
    for loaded in (Predictor.load(path), Predictor.load(path, predictor.space)):
        assert loaded.space is predictor.space and loaded.config == predictor.config
        assert torch.equal(loaded.predict(widths), predictor.predict(widths))


def test_load_refuses_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "predictor.pt"
    _small_fit().save(path)
    for other in (
        search_spaces.create("resnet20_b"),
        search_spaces.create("resnet20", num_classes=100),
    ):
        with pytest.raises(WeightsError, match="is a predictor for resnet20"):
            Predictor.load(path, other)
    with pytest.raises(WeightsError, match="not found"):
        Predictor.load(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:200])
    with pytest.raises(WeightsError, match="cannot read"):
        Predictor.load(corrupt)
    wrong = tmp_path / "wrong.pt"
    torch.save({"format": "something-else"}, wrong)
    with pytest.raises(WeightsError, match="not a channel-nas predictor"):
        Predictor.load(wrong)
    raw = torch.load(path, weights_only=True)
    raw["config"]["hidden"] = 32  # the stored weights no longer fit the architecture
    torch.save(raw, wrong)
    with pytest.raises(WeightsError, match="does not match"):
        Predictor.load(wrong)
    raw["space"] = "resnet7"
    torch.save(raw, wrong)
    with pytest.raises(WeightsError, match="invalid predictor"):
        Predictor.load(wrong)


def test_fit_refuses_mismatched_inputs() -> None:
    encoder = GraphEncoder.for_space(search_spaces.create("resnet20"))
    widths = _sample(encoder.space, 10, 0)
    with pytest.raises(ValueError, match="scores"):
        fit_predictor(encoder, widths, torch.zeros(9), PredictorConfig(epochs=1))
    with pytest.raises(ValueError):
        fit_predictor(encoder, widths[:, :3], torch.zeros(10), PredictorConfig(epochs=1))


def test_rank_correlations() -> None:
    x = torch.arange(10.0)
    assert rank_correlations(x, x * 3 + 1) == pytest.approx({"kendall_tau": 1, "spearman": 1})
    assert rank_correlations(x, -x) == pytest.approx({"kendall_tau": -1, "spearman": -1})
    corr = rank_correlations(x, torch.tensor([0.0, 2, 1, 3, 4, 5, 6, 7, 8, 9]))
    assert 0.9 < corr["kendall_tau"] < corr["spearman"] < 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # undefined (constant input): NaN, and no warning
        constant = rank_correlations(x, torch.ones(10))
    assert all(math.isnan(v) for v in constant.values())
