"""The field's other flatness measures (flatscape.core.flatness.generalization): invariance
under T_lambda where the papers prove it, closed forms on linear and quadratic models,
determinism under a seed, and bad settings refused before any computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from flatscape.core.flatness import (
    GENERALIZATION_MEASURES,
    MEASURE_FUNCTIONS,
    adaptive_sharpness,
    adaptive_sharpness_avg,
    euclidean_hessian_trace,
    fisher_rao_norm,
    pac_bayes_flatness,
    pac_bayes_mag_flatness,
    parameter_blocks,
    relative_flatness,
    rescale,
    riemannian_trace,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CE = nn.functional.cross_entropy
MSE = nn.functional.mse_loss
LAMBDAS = [4.0, 0.5, 0.5]


def _mlp(bias: bool = True, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7, bias=bias), nn.ReLU(), nn.Linear(7, 6, bias=bias), nn.ReLU(),
                         nn.Linear(6, 3, bias=bias)).double()  # fmt: skip


def _classification(n: int = 40, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    return x, torch.randint(0, 3, (n,), generator=gen)


def _least_squares(n: int = 30, k: int = 4, seed: int = 2) -> tuple[nn.Module, torch.Tensor, torch.Tensor, np.ndarray]:
    """A linear regression at its least-squares minimum: L(w + d) - L(w) = d^T H d / 2 exactly."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, k, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [1.5]], dtype=torch.float64) + 0.1 * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    w = torch.linalg.lstsq(x, y).solution
    model = nn.Linear(k, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w.T)
    hessian = (2.0 / n) * (x.T @ x).numpy()  # of mean((x w - y)^2)
    return model, x, y, hessian


def _draws(count: int, size: int, seed: int) -> list[np.ndarray]:
    """The draws the measures make: one flat float64 normal vector per draw from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(size, generator=gen, dtype=torch.float64).numpy() for _ in range(count)]


# ---- invariance under T_lambda, and a measure that moves

INVARIANT = {
    "relative_flatness": lambda m, d: relative_flatness(m, CE, d),
    "adaptive_sharpness": lambda m, d: adaptive_sharpness(m, CE, d, rho=0.3, steps=5, seed=3),
    "adaptive_sharpness_avg": lambda m, d: adaptive_sharpness_avg(m, CE, d, rho=0.1, samples=4, seed=3),
    "pac_bayes_mag_flatness": lambda m, d: pac_bayes_mag_flatness(m, CE, d, eps=0.0, criterion="loss", bound=0.05,
                                                                  samples=3, steps=20, seed=3),
    "fisher_rao_norm": lambda m, d: fisher_rao_norm(m, CE, d),
    "riemannian_trace": lambda m, d: riemannian_trace(m, CE, d, probes=6, seed=3),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(INVARIANT))
@pytest.mark.parametrize("bias", [True, False])
def test_invariant_under_t_lambda(name, bias):
    model, data = _mlp(bias), _classification()
    scaled = rescale(model, LAMBDAS)
    before, after = INVARIANT[name](model, data), INVARIANT[name](scaled, data)
    assert before.value != 0 and math.isfinite(before.value)
    assert after.value == pytest.approx(before.value, rel=1e-7)


def test_euclidean_measures_move_under_t_lambda():
    """The same rescaling moves the Euclidean trace and isotropic PAC-Bayes flatness (Dinh et al. 2017)."""
    model, data = _mlp(), _classification()
    scaled = rescale(model, LAMBDAS)
    euclid = [euclidean_hessian_trace(m, CE, data, max_hvp=20, seed=0).value for m in (model, scaled)]
    assert abs(euclid[1] / euclid[0] - 1) > 0.2
    iso = [pac_bayes_flatness(m, CE, data, criterion="loss", bound=0.05, samples=3, steps=20, seed=3).value
           for m in (model, scaled)]  # fmt: skip
    assert abs(iso[1] / iso[0] - 1) > 0.05


def test_magnitude_pac_bayes_with_eps_is_only_nearly_invariant():
    model, data = _mlp(), _classification()
    kw = dict(criterion="loss", bound=0.05, samples=3, steps=25, seed=3, eps=1e-3)
    before, after = pac_bayes_mag_flatness(model, CE, data, **kw), pac_bayes_mag_flatness(rescale(model, LAMBDAS), CE, data, **kw)
    assert after.value == pytest.approx(before.value, rel=0.05)


# ---- closed forms


def test_relative_flatness_matches_its_definition_on_the_full_hessian():
    """kappa_Tr = sum_{s,s'} <w_s, w_s'> Tr(H_{s,s'}), H the Hessian in the last layer's weights."""
    model, (x, y) = _mlp(), _classification()
    last = model[4]
    body = model[:4]

    def loss_of(w_flat):
        return CE(body(x) @ w_flat.view(3, 6).T + last.bias, y)

    w = last.weight.detach().clone()
    hess = torch.autograd.functional.hessian(loss_of, w.reshape(-1)).view(3, 6, 3, 6)
    expected = sum(float(w[s] @ w[t]) * float(torch.diagonal(hess[s, :, t, :]).sum()) for s in range(3) for t in range(3))
    got = relative_flatness(model, CE, (x, y), batch_size=7)
    assert got.value == pytest.approx(expected, rel=1e-9)
    assert got.info["layer"] == "4"
    assert got.loss == pytest.approx(float(CE(model(x), y).detach()), rel=1e-12)


def test_relative_flatness_refuses_a_layer_that_is_not_the_output():
    model, data = _mlp(), _classification()
    with pytest.raises(ValueError, match="layer"):
        relative_flatness(model, CE, data, layer="0")
    with pytest.raises(ValueError, match="layer"):
        relative_flatness(model, CE, data, layer="nope")


def test_adaptive_sharpness_worst_case_closed_form_on_a_quadratic():
    """At the minimum of a quadratic: max_{||u|| <= rho} (|w| u)^T H (|w| u) / 2 = rho^2 lambda_max(C H C) / 2."""
    model, x, y, hessian = _least_squares()
    c = np.abs(model.weight.detach().numpy().ravel())
    expected = 0.5 * 0.2**2 * np.linalg.eigvalsh(np.diag(c) @ hessian @ np.diag(c)).max()
    got = adaptive_sharpness(model, MSE, (x, y), rho=0.2, steps=60, seed=0)
    assert got.value == pytest.approx(expected, rel=1e-4)
    assert got.value <= expected * (1 + 1e-9)  # a feasible point never beats the max


def test_adaptive_sharpness_average_closed_form_on_a_quadratic():
    """On a quadratic L(w + d) - L(w) = g.d + d^T H d / 2 exactly, for each of the seeded draws."""
    model, x, y, hessian = _least_squares()
    with torch.no_grad():
        model.weight.add_(0.3)  # away from the minimum: the gradient term counts too
    w = model.weight.detach().numpy().ravel()
    grad = hessian @ w - (2.0 / len(x)) * (x.T @ y).numpy().ravel()
    deltas = [0.1 * np.abs(w) * z for z in _draws(5, 4, seed=7)]
    expected = np.mean([grad @ d + 0.5 * d @ hessian @ d for d in deltas])
    got = adaptive_sharpness_avg(model, MSE, (x, y), rho=0.1, samples=5, seed=7)
    assert got.value == pytest.approx(expected, rel=1e-9)


def test_pac_bayes_closed_form_on_a_quadratic():
    """Isotropic noise at a quadratic minimum: the increase is sigma^2 q / 2, q = mean z^T H z over the
    draws, so the largest sigma within the bound is sqrt(2 bound / q); magnitude-aware (eps = 0),
    alpha^2 mean (|w| z)^T H (|w| z) / 2."""
    model, x, y, hessian = _least_squares()
    w = np.abs(model.weight.detach().numpy().ravel())
    zs = _draws(4, 4, seed=5)
    q_iso = np.mean([z @ hessian @ z for z in zs])
    q_mag = np.mean([(w * z) @ hessian @ (w * z) for z in zs])
    kw = dict(criterion="loss", bound=0.01, samples=4, steps=50, seed=5)
    iso = pac_bayes_flatness(model, MSE, (x, y), **kw)
    mag = pac_bayes_mag_flatness(model, MSE, (x, y), eps=0.0, **kw)
    assert iso.info["sigma"] == pytest.approx(math.sqrt(2 * 0.01 / q_iso), rel=1e-9)
    assert iso.value == pytest.approx(q_iso / (2 * 0.01), rel=1e-8)
    assert mag.info["sigma"] == pytest.approx(math.sqrt(2 * 0.01 / q_mag), rel=1e-9)


def test_pac_bayes_error_criterion_stays_within_the_bound():
    model, data = _mlp(), _classification()
    res = pac_bayes_flatness(model, CE, data, bound=0.1, samples=4, steps=12, seed=0)
    assert res.info["criterion"] == "error"
    assert 0 < res.info["sigma"] < math.inf and res.info["increase"] <= 0.1


def test_fisher_rao_closed_form_on_a_linear_model():
    """Linear f = W x (depth 1): <w, grad l_i> = <softmax(f_i) - e_{y_i}, f_i>, times (1 + 1)^2."""
    torch.manual_seed(0)
    model = nn.Linear(5, 3, bias=False).double()
    x, y = _classification()
    f = model(x).detach()
    g = torch.softmax(f, dim=1) - nn.functional.one_hot(y, 3)
    expected = 4.0 * float(((g * f).sum(dim=1) ** 2).mean())
    assert fisher_rao_norm(model, CE, (x, y), batch_size=9).value == pytest.approx(expected, rel=1e-10)


def test_fisher_rao_of_a_bias_free_relu_network_is_euler():
    """Homogeneous of degree d in w: <w, grad_w f> = d f, so mu_fr = (d+1)^2 d^2 mean <grad_f l, f>^2."""
    model, (x, y) = _mlp(bias=False), _classification()
    f = model(x).detach()
    g = torch.softmax(f, dim=1) - nn.functional.one_hot(y, 3)
    expected = 16.0 * 9.0 * float(((g * f).sum(dim=1) ** 2).mean())
    assert fisher_rao_norm(model, CE, (x, y)).value == pytest.approx(expected, rel=1e-9)


def test_riemannian_trace_closed_form_on_a_linear_regression():
    """One block: tr(G^{-1} H) = ||w||^2 tr(H); Hutchinson is within a few standard errors."""
    model, x, y, hessian = _least_squares()
    expected = float(model.weight.detach().pow(2).sum()) * np.trace(hessian)
    got = riemannian_trace(model, MSE, (x, y), probes=400, tol=1e-3, seed=0)
    assert abs(got.value - expected) <= 4 * got.info["std_error"] + 1e-12


# ---- determinism under a seed


@pytest.mark.parametrize("name", ["adaptive_sharpness", "adaptive_sharpness_avg", "pac_bayes_flatness", "riemannian_trace"])
def test_same_seed_same_value(name):
    model, data = _mlp(), _classification()
    fn = MEASURE_FUNCTIONS[name]
    kw = {"adaptive_sharpness": dict(rho=0.3, steps=4), "adaptive_sharpness_avg": dict(rho=0.1, samples=3),
          "pac_bayes_flatness": dict(samples=3, steps=8, criterion="loss"), "riemannian_trace": dict(probes=5)}[name]  # fmt: skip
    a, b = fn(model, CE, data, seed=11, **kw), fn(model, CE, data, seed=11, **kw)
    other = fn(model, CE, data, seed=12, **kw)
    assert a.value == b.value
    assert other.value != a.value


def test_every_measure_is_registered():
    assert set(MEASURE_FUNCTIONS) == set(GENERALIZATION_MEASURES)


# ---- bad settings, refused before anything is computed (data=None would fail later)


@pytest.mark.parametrize(
    ("fn", "kwargs", "option"),
    [
        (adaptive_sharpness, {"rho": 0.0}, "rho"),
        (adaptive_sharpness, {"rho": -1.0}, "rho"),
        (adaptive_sharpness, {"steps": 0}, "steps"),
        (adaptive_sharpness_avg, {"rho": float("nan")}, "rho"),
        (adaptive_sharpness_avg, {"samples": 0}, "samples"),
        (pac_bayes_flatness, {"samples": -2}, "samples"),
        (pac_bayes_flatness, {"steps": 0}, "steps"),
        (pac_bayes_flatness, {"bound": 0}, "bound"),
        (pac_bayes_flatness, {"criterion": "margin"}, "criterion"),
        (pac_bayes_mag_flatness, {"eps": -1e-3}, "eps"),
        (riemannian_trace, {"probes": 0}, "probes"),
        (adaptive_sharpness, {"steps": 2.5}, "steps"),
    ],
)
def test_bad_settings_are_refused_naming_the_option(fn, kwargs, option):
    with pytest.raises(ValueError, match=option):
        fn(_mlp(), CE, None, **kwargs)


def test_parameter_draw_order_is_the_blocks_order():
    """The closed-form tests rebuild the draws from this order: weights, then biases."""
    names = [name for name, _ in parameter_blocks(_mlp())]
    assert names == ["0.weight", "2.weight", "4.weight", "0.bias", "2.bias", "4.bias"]


@pytest.mark.parametrize("target", [1e-3, 0.37, 5e3])
def test_sigma_search_is_relatively_precise_at_any_scale(target):
    from flatscape.core.flatness.pac_bayes import _largest_sigma

    calls = []

    def increase(sigma):
        calls.append(sigma)
        return (sigma / target) ** 2

    sigma, reached = _largest_sigma(increase, 1.0, 20)
    assert sigma <= target and sigma == pytest.approx(target, rel=1e-5) and reached <= 1.0
    assert len(calls) < 20 + 20  # a power-of-two bracket, then the bisections
