"""Measuring in float64 where float32 loses the Hessian (issue 29): a network whose training CE is
so small that float32 rounds each sample's softmax to exactly one (CE reads 0.0)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from flatscape.ch3 import measure
from flatscape.core.flatness import riemannian_spectral_norm
from flatscape.core.train import evaluate


def _confident(margin: float):
    """A bias-free 2-layer net and 64 samples it classifies with logit margins of about ``margin``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 6), generator=g).float() / 255.0  # as core.train.evaluate reads uint8 images
    net = nn.Sequential(nn.Linear(6, 8, bias=False), nn.Tanh(), nn.Linear(8, 3, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.randn(8, 6, generator=g, dtype=torch.float64))
        logits = net(x.double())
        y = logits.argmax(1)
        top2 = logits.topk(2, dim=1).values
        net[2].weight.mul_(margin / (top2[:, 0] - top2[:, 1]).min())
    return net.float(), x, y


def test_float64_loss_is_positive_where_float32_reads_zero():
    net, x, y = _confident(margin=25.0)
    assert F.cross_entropy(net(x), y).item() == 0.0
    loss = measure.float64_loss(net, (x, y), batch_size=16)
    direct = F.cross_entropy(net.double()(x.double()), y).item()
    assert 0.0 < loss < 1e-9 and loss == pytest.approx(direct, rel=1e-12)


def test_evaluate_reads_the_small_ce_that_float32_rounds_to_zero():
    net, x, y = _confident(margin=25.0)
    images = (x * 255).round().to(torch.uint8)
    out = net(images.float() / 255.0)
    assert F.cross_entropy(out, y).item() == 0.0
    loss, acc = evaluate(net, images, y)
    assert loss == pytest.approx(F.cross_entropy(out.double(), y).item(), rel=1e-12) and loss > 0 and acc == 1.0


@pytest.mark.parametrize("margin, expected", [(4.0, torch.float32), (25.0, torch.float64)])
def test_measuring_dtype_switches_to_float64_below_the_level(margin, expected):
    net, x, y = _confident(margin)
    dtype, loss = measure.measuring_dtype(net, (x, y), "float32", 1e-6, None)
    assert dtype is expected and (loss < 1e-6) == (expected is torch.float64)
    assert measure.measuring_dtype(net, (x, y), "float32", None, None)[0] is torch.float32  # null: always as configured


def test_float32_loses_the_hessian_of_a_confident_network_and_float64_keeps_it():
    """The reason for the rule: at margin 18 (CE about 1e-8) float32's lambda_max is off by far
    more than any tolerance, float64's agrees with a float64 reference at a tight tolerance."""
    net, x, y = _confident(margin=18.0)
    ref = riemannian_spectral_norm(net.double(), F.cross_entropy, (x.double(), y), tol=1e-10, max_hvp=200,
                                   dtype=torch.float64).value  # fmt: skip
    f64 = riemannian_spectral_norm(net, F.cross_entropy, (x, y), tol=1e-6, max_hvp=200, dtype=torch.float64).value
    f32 = riemannian_spectral_norm(net, F.cross_entropy, (x, y), tol=1e-6, max_hvp=200, dtype=torch.float32).value
    assert f64 == pytest.approx(ref, rel=1e-5)
    assert abs(f32 - ref) > 1e-2 * abs(ref)


def test_the_ranking_measures_switch_to_float64_too(tmp_path, one_thread):
    from test_minima import _train, _write_dataset

    from flatscape.ch3 import ranking
    from flatscape.pipeline.config import settings

    data = _write_dataset(tmp_path / "d.npz")
    _train(tmp_path, data, epochs=3)
    base = dict(measures=["fisher_rao_norm"], samples=40, batch_size=None, dtype="float32", rho=0.05, steps=1,
                average_rho=0.05, average_samples=1, pac_bayes_bound=0.1, pac_bayes_samples=1, pac_bayes_steps=1,
                pac_bayes_criterion="error", pac_bayes_eps=1e-3, trace_probes=1, trace_tol=0.1, seed=0, device="cpu",
                hyperparameters={})  # fmt: skip
    for below, expected in ((None, "float32"), (10.0, "float64")):
        s = settings(ranking.GeneralizationSettings, base | {"float64_below": below})
        out = ranking.measure_run(tmp_path / "m.pt", data, s, device=torch.device("cpu"))
        assert out["dtype"] == expected and out["flatness_loss_float64"] > 0
