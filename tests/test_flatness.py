"""Properties of the scale-invariant flatness engine (thesis Sec. 3.3-3.4)."""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh
from torch import nn
from torch.func import functional_call

from flatscape.core.flatness import (
    CurvatureOperator,
    LossHessian,
    WarmStage,
    euclidean_spectral_norm,
    hvp,
    lanczos,
    metric_inner,
    parameter_blocks,
    power_iteration,
    rescale,
    riemannian_hessian_trace,
    riemannian_hvp,
    riemannian_spectral_norm,
    sharpness_bound,
    spectral_norm,
    trace,
)
from flatscape.core.flatness.solvers import MIN_GAP_STEPS


pytestmark = pytest.mark.usefixtures("one_thread")

CE = nn.functional.cross_entropy


def tiny_mlp(bias: bool = True, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, 6, bias=bias), nn.ReLU(), nn.Linear(6, 4, bias=bias), nn.ReLU(), nn.Linear(4, 3, bias=bias)
    ).double()


def tiny_convnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 3 * 3, 3)
    ).double()


def tiny_data(n: int = 40, shape=(5,), seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)


def random_lambdas(count: int, seed: int) -> list[float]:
    """Positive multipliers with product exactly 1 up to rounding (not powers of two)."""
    rng = np.random.default_rng(seed)
    logs = rng.normal(0.0, 1.0, count)
    logs -= logs.mean()
    return [float(v) for v in np.exp(logs)]


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=CE) -> tuple[torch.Tensor, torch.Tensor]:
    """Full Hessian over the blocks (weights first, then biases) and the flat G^{-1/2} diagonal."""
    blocks = parameter_blocks(model)
    flat = torch.cat([p.detach().reshape(-1) for _, p in blocks])
    sizes = [p.numel() for _, p in blocks]

    def loss(w):
        state = {name: chunk.view_as(p) for (name, p), chunk in zip(blocks, torch.split(w, sizes))}
        return loss_fn(functional_call(model, state, (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, flat)
    scale = torch.cat([torch.full((p.numel(),), float(p.detach().norm()), dtype=torch.float64) for _, p in blocks])
    return hessian, scale


def test_parameter_blocks_put_all_weights_before_biases():
    names = [name for name, _ in parameter_blocks(tiny_mlp())]
    assert names == ["0.weight", "2.weight", "4.weight", "0.bias", "2.bias", "4.bias"]


def test_parameter_blocks_append_other_trainable_tensors_after_the_biases():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2), nn.LayerNorm(2))
    model[3].bias.requires_grad_(False)  # frozen: not a block
    names = [name for name, _ in parameter_blocks(model)]
    assert names == ["0.weight", "2.weight", "0.bias", "2.bias", "1.weight", "1.bias", "3.weight"]


@pytest.mark.parametrize(
    "model, message",
    [
        (nn.Sequential(nn.LazyLinear(3)), "not initialised"),
        (nn.Sequential(nn.Linear(2, 2, dtype=torch.complex64)), "not a real floating"),
    ],
)
def test_parameter_blocks_reject_parameters_the_measure_cannot_handle(model, message):
    with pytest.raises(ValueError, match=f"unsupported parameter 0.weight: .*{message}"):
        parameter_blocks(model)


def test_hvp_matches_central_finite_differences_of_gradient():
    model = tiny_mlp()
    x, y = tiny_data()
    gen = torch.Generator().manual_seed(3)
    vector = {name: torch.randn(p.shape, generator=gen, dtype=torch.float64) for name, p in parameter_blocks(model)}
    product = hvp(model, CE, (x, y), vector)

    def gradient_at(step: float) -> dict[str, torch.Tensor]:
        shifted = {name: (p.detach() + step * vector[name]).requires_grad_() for name, p in parameter_blocks(model)}
        loss = CE(functional_call(model, shifted, (x,)), y)
        return dict(zip(shifted, torch.autograd.grad(loss, list(shifted.values()))))

    h = 1e-5
    plus, minus = gradient_at(h), gradient_at(-h)
    for name in vector:
        fd = (plus[name] - minus[name]) / (2 * h)
        assert torch.allclose(product[name], fd, rtol=1e-6, atol=1e-8), name


def test_value_matches_dense_riemannian_hessian_with_biases():
    model = tiny_mlp(bias=True)
    x, y = tiny_data()
    hessian, scale = dense_hessian(model, x, y)
    expected = torch.linalg.eigvalsh(scale[:, None] * hessian * scale[None, :])[-1].item()
    result = riemannian_spectral_norm(model, CE, (x, y), tol=1e-12)
    assert result.converged
    assert result.value == pytest.approx(expected, rel=1e-10)
    # The eigenvector is a unit g-vector with Hess xi = lambda xi (Riemannian HVP of Sec. 3.4.1.2).
    xi = result.eigenvector
    assert metric_inner(model, xi, xi).item() == pytest.approx(1.0, rel=1e-12)
    # tol bounds the value's error; the vector's is its residual r (~sqrt(tol * gap)), and
    # Hess xi - lambda xi = S (A u - lambda u) has norm <= max ||W_i|| * r.
    image = riemannian_hvp(model, CE, (x, y), xi)
    miss = sum(float((image[n] - result.value * xi[n]).pow(2).sum()) for n in xi) ** 0.5
    largest = max(float(p.norm()) for p in model.parameters())
    assert miss <= 1.01 * largest * result.residual + 1e-12 and result.residual < 1e-5


def test_euclidean_value_matches_dense_hessian():
    model = tiny_mlp()
    x, y = tiny_data()
    hessian, _ = dense_hessian(model, x, y)
    result = euclidean_spectral_norm(model, CE, (x, y), tol=1e-12)
    assert result.value == pytest.approx(torch.linalg.eigvalsh(hessian)[-1].item(), rel=1e-10)


def test_riemannian_hvp_is_self_adjoint_in_the_metric():
    model = tiny_mlp()
    x, y = tiny_data()
    gen = torch.Generator().manual_seed(5)
    eta = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) for n, p in parameter_blocks(model)}
    xi = {n: torch.randn(p.shape, generator=gen, dtype=torch.float64) for n, p in parameter_blocks(model)}
    left = metric_inner(model, eta, riemannian_hvp(model, CE, (x, y), xi))
    right = metric_inner(model, riemannian_hvp(model, CE, (x, y), eta), xi)
    assert left.item() == pytest.approx(right.item(), rel=1e-10)


@pytest.mark.parametrize("bias", [True, False])
def test_spectrum_invariant_under_rescaling(bias):
    model = tiny_mlp(bias=bias)
    data = tiny_data()
    lambdas = random_lambdas(3, seed=7)
    scaled = rescale(model, lambdas)
    base = riemannian_spectral_norm(model, CE, data, tol=1e-12)
    moved = riemannian_spectral_norm(scaled, CE, data, tol=1e-12)
    assert abs(base.value - moved.value) / base.value < 1e-10
    euc_base = euclidean_spectral_norm(model, CE, data, tol=1e-12)
    euc_moved = euclidean_spectral_norm(scaled, CE, data, tol=1e-12)
    assert abs(euc_base.value - euc_moved.value) / euc_base.value > 1e-2


def test_spectrum_of_convnet_invariant_under_rescaling():
    model = tiny_convnet()
    data = tiny_data(n=12, shape=(1, 6, 6))
    scaled = rescale(model, random_lambdas(2, seed=11))
    base = riemannian_spectral_norm(model, CE, data, tol=1e-12)
    moved = riemannian_spectral_norm(scaled, CE, data, tol=1e-12)
    assert abs(base.value - moved.value) / base.value < 1e-10


def test_power_method_invariant_under_rescaling():
    model = tiny_mlp()
    data = tiny_data()
    scaled = rescale(model, random_lambdas(3, seed=2))
    base = riemannian_spectral_norm(model, CE, data, method="power", tol=1e-8)
    moved = riemannian_spectral_norm(scaled, CE, data, method="power", tol=1e-8)
    assert abs(base.value - moved.value) / base.value < 1e-10
    assert base.num_hvp == moved.num_hvp  # the stopping rule is measured in the invariant metric norm


def test_riemannian_trace_invariant_and_matches_dense_trace():
    model = tiny_mlp()
    data = tiny_data()
    hessian, scale = dense_hessian(model, *data)
    exact = torch.trace(scale[:, None] * hessian * scale[None, :]).item()
    est = riemannian_hessian_trace(model, CE, data, tol=0.0, max_hvp=400, min_hvp=400)
    assert abs(est.value - exact) < 4 * est.std_error
    moved = riemannian_hessian_trace(rescale(model, random_lambdas(3, 4)), CE, data, tol=0.0, max_hvp=400, min_hvp=400)
    assert abs(moved.value - est.value) / abs(est.value) < 1e-10


@pytest.mark.parametrize("reuse_graph", [True, False])
def test_micro_batching_matches_full_batch(reuse_graph):
    model = tiny_mlp()
    data = tiny_data(n=40)
    full = riemannian_spectral_norm(model, CE, data, tol=1e-10)
    micro = riemannian_spectral_norm(model, CE, data, tol=1e-10, batch_size=7, reuse_graph=reuse_graph)
    assert abs(full.value - micro.value) / full.value < 1e-12
    assert micro.loss == pytest.approx(CE(model(data[0]), data[1]).item(), rel=1e-12)


def test_iterable_of_batches_equals_one_batch():
    model = tiny_mlp()
    x, y = tiny_data(n=40)
    whole = riemannian_spectral_norm(model, CE, (x, y), tol=1e-10)
    pieces = riemannian_spectral_norm(model, CE, [(x[:13], y[:13]), (x[13:], y[13:])], tol=1e-10)
    assert abs(whole.value - pieces.value) / whole.value < 1e-12


def test_power_and_lanczos_agree():
    model = tiny_mlp()
    data = tiny_data()
    lz = riemannian_spectral_norm(model, CE, data, method="lanczos", tol=1e-12)
    pw = riemannian_spectral_norm(model, CE, data, method="power", tol=1e-9)
    assert pw.converged and lz.converged
    assert pw.value == pytest.approx(lz.value, rel=1e-8)
    assert lz.num_hvp < pw.num_hvp


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_not_converged_when_max_hvp_too_small(method):
    result = riemannian_spectral_norm(tiny_mlp(), CE, tiny_data(), method=method, tol=1e-12, max_hvp=2)
    assert not result.converged
    assert result.num_hvp == 2 and len(result.history) == 2


def test_warm_start_on_the_exact_operator_leaves_one_or_two_full_hvps():
    model = tiny_mlp()
    data = tiny_data()
    cold = riemannian_spectral_norm(model, CE, data, tol=1e-10)
    warm = riemannian_spectral_norm(model, CE, data, tol=1e-10, warm_start=[WarmStage(tol=1e-12)])
    assert warm.converged and warm.warm_hvp and warm.warm_hvp[0] >= cold.num_hvp - MIN_GAP_STEPS
    assert warm.num_hvp <= 2 < cold.num_hvp  # the warm stage stops on the residual: its vector is exact
    assert abs(warm.value - cold.value) / cold.value < 1e-10


@pytest.mark.parametrize(
    "stages",
    [
        [WarmStage(fraction=0.25)],
        [WarmStage(dtype=torch.bfloat16, tol=3e-2)],
        [WarmStage(fraction=0.5, dtype=torch.float32), WarmStage(dtype=torch.bfloat16)],
    ],
    ids=["subsample", "bf16", "subsample-then-bf16"],
)
def test_warm_start_changes_the_start_not_the_value(stages):
    model = tiny_mlp()
    x, y = tiny_data(n=40)
    cold = riemannian_spectral_norm(model, CE, (x, y), tol=1e-10)
    # A generator of batches is consumed once, however many passes there are.
    batches = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 40, 10))
    warm = riemannian_spectral_norm(model, CE, batches, tol=1e-10, warm_start=stages)
    assert warm.converged and len(warm.warm_hvp) == len(stages)
    assert abs(warm.value - cold.value) / cold.value < 1e-10
    assert warm.history[0] != pytest.approx(cold.history[0], rel=1e-6)  # it did start elsewhere
    euc_cold = euclidean_spectral_norm(model, CE, (x, y), tol=1e-10)
    euc_warm = euclidean_spectral_norm(model, CE, (x, y), tol=1e-10, warm_start=stages)
    assert abs(euc_warm.value - euc_cold.value) / euc_cold.value < 1e-10


def test_warm_start_subsample_is_strided_and_invariant_under_rescaling():
    x, y = tiny_data(n=10)
    assert [len(b[0]) for b in WarmStage(fraction=0.3).samples((x, y))] == [4]  # samples 0, 3, 6, 9
    assert torch.equal(WarmStage(fraction=0.3).samples((x, y))[0][0], x[::3])
    model = tiny_mlp(bias=False)
    scaled = rescale(model, random_lambdas(3, seed=3))
    stages = [WarmStage(fraction=0.5)]
    base = riemannian_spectral_norm(model, CE, tiny_data(), tol=1e-12, warm_start=stages)
    moved = riemannian_spectral_norm(scaled, CE, tiny_data(), tol=1e-12, warm_start=stages)
    assert abs(base.value - moved.value) / base.value < 1e-10


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"dtype": torch.int64}, "dtype"),
        ({"tol": 0.0}, "tol"),
        ({"max_hvp": 0}, "max_hvp"),
    ],
)
def test_warm_stage_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmStage(**kwargs)


def test_warm_start_must_hold_warm_stages():
    with pytest.raises(ValueError, match="WarmStage"):
        riemannian_spectral_norm(tiny_mlp(), CE, tiny_data(), warm_start=[0.5])


def test_result_layout_follows_blocks():
    model = tiny_mlp()
    result = riemannian_spectral_norm(model, CE, tiny_data(), tol=1e-8)
    assert list(result.eigenvector) == [name for name, _ in parameter_blocks(model)]
    for name, p in parameter_blocks(model):
        assert result.eigenvector[name].shape == p.shape
    assert len(result.history) == result.num_hvp
    assert result.history[-1] == result.value


def test_float64_mode_leaves_model_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = tiny_data()
    first = riemannian_spectral_norm(model, CE, (x.float(), y), dtype=torch.float64, tol=1e-10)
    second = riemannian_spectral_norm(model, CE, (x.float(), y), dtype=torch.float64, tol=1e-10)
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())
    assert first.eigenvector["0.weight"].dtype == torch.float64
    # Dropout is off (eval mode): the value is deterministic and equals the value without dropout.
    assert first.value == second.value
    no_dropout = copy.deepcopy(nn.Sequential(model[0], model[1], model[3])).double()
    same_inputs = (x.float().double(), y)
    assert first.value == pytest.approx(riemannian_spectral_norm(no_dropout, CE, same_inputs, tol=1e-10).value, rel=1e-9)


def test_float32_matches_float64_to_single_precision():
    model = tiny_mlp().float()
    x, y = tiny_data()
    single = riemannian_spectral_norm(model, CE, (x.float(), y), tol=1e-6)
    double = riemannian_spectral_norm(model, CE, (x.float(), y), tol=1e-12, dtype=torch.float64)
    assert single.value == pytest.approx(double.value, rel=1e-5)


def test_lanczos_stops_on_the_eigenvalue_error_for_known_spectrum():
    eigenvalues = torch.linspace(-3.0, 10.0, 200, dtype=torch.float64)
    start = torch.ones(200, dtype=torch.float64)
    sol = lanczos(lambda v: eigenvalues * v, start, tol=1e-6, max_iter=200)
    true_residual = (eigenvalues * sol.vector - sol.value * sol.vector).norm().item()
    assert sol.converged and abs(sol.value - 10.0) <= 1e-6 * 10.0
    assert true_residual == pytest.approx(sol.residual, rel=1e-3)  # the reported residual is the real one
    assert abs(sol.value - 10.0) <= sol.residual  # Ritz value within the residual of lambda_max
    tight = lanczos(lambda v: eigenvalues * v, start, tol=1e-12, max_iter=200)
    assert tight.value == pytest.approx(10.0, rel=1e-12) and tight.num_hvp > sol.num_hvp


def test_lanczos_keeps_its_basis_orthonormal():
    eigenvalues = torch.cat([torch.tensor([100.0, 50.0]), torch.linspace(0.0, 1.0, 298)]).to(torch.float64)
    basis = []

    def apply(v):
        basis.append(v.clone())
        return eigenvalues * v

    lanczos(apply, torch.ones(300, dtype=torch.float64), tol=0.0, max_iter=80)
    q = torch.stack(basis)
    assert torch.allclose(q @ q.T, torch.eye(len(basis), dtype=torch.float64), atol=1e-12)


def test_lanczos_finds_largest_algebraic_and_power_the_dominant(caplog):
    # Negative curvature dominates: loss = -mean(output^2).
    model = tiny_mlp()
    data = tiny_data()
    neg = lambda out, _y: -(out**2).mean()  # noqa: E731
    hessian, scale = dense_hessian(model, *data, loss_fn=neg)
    spectrum = torch.linalg.eigvalsh(scale[:, None] * hessian * scale[None, :])
    assert abs(spectrum[0]) > abs(spectrum[-1])  # the premise of this test
    assert riemannian_spectral_norm(model, neg, data, tol=1e-12).value == pytest.approx(spectrum[-1].item(), rel=1e-8)
    with caplog.at_level(logging.WARNING, logger="flatscape.core.flatness"):
        power = riemannian_spectral_norm(model, neg, data, method="power", tol=1e-10, max_hvp=5000)
    assert power.value == pytest.approx(spectrum[0].item(), rel=1e-6)
    assert "negative dominant eigenvalue" in caplog.text


def test_power_iteration_on_known_spectrum():
    eigenvalues = torch.tensor([5.0, 4.0, 1.0, -2.0], dtype=torch.float64)
    sol = power_iteration(lambda v: eigenvalues * v, torch.ones(4, dtype=torch.float64), tol=1e-12, max_iter=1000)
    assert sol.converged and sol.value == pytest.approx(5.0, rel=1e-12)
    # Convergence rate (4/5)^t: the number of products is about log(tol) / log(0.8).
    assert abs(sol.num_hvp - math.log(1e-12) / math.log(0.8)) < 10


def test_zero_norm_block_contributes_nothing():
    model = tiny_mlp()
    with torch.no_grad():
        model[2].bias.zero_()
    x, y = tiny_data()
    hessian, scale = dense_hessian(model, x, y)
    expected = torch.linalg.eigvalsh(scale[:, None] * hessian * scale[None, :])[-1].item()
    result = riemannian_spectral_norm(model, CE, (x, y), tol=1e-12)
    assert math.isfinite(result.value) and result.value == pytest.approx(expected, rel=1e-10)
    assert torch.count_nonzero(result.eigenvector["2.bias"]) == 0


def test_rescale_preserves_function_and_scales_blocks():
    model = tiny_mlp()
    lambdas = [2.5, 0.8, 0.5]
    scaled = rescale(model, lambdas)
    x, _ = tiny_data()
    assert torch.allclose(model(x), scaled(x), rtol=1e-13, atol=1e-13)
    running = 1.0
    for i, lam in zip((0, 2, 4), lambdas):
        running *= lam
        assert torch.allclose(scaled[i].weight, lam * model[i].weight)
        assert torch.allclose(scaled[i].bias, running * model[i].bias)
    assert scaled is not model and not torch.equal(scaled[0].weight, model[0].weight)


@pytest.mark.parametrize(
    "lambdas, message",
    [([2.0, 0.5], "one lambda per"), ([2.0, 0.5, 2.0], "product must be 1"), ([-1.0, -1.0, 1.0], "positive")],
)
def test_rescale_rejects_invalid_lambdas(lambdas, message):
    with pytest.raises(ValueError, match=message):
        rescale(tiny_mlp(), lambdas)


def test_sharpness_bound_conventions():
    # MNIST-FC in Table 3.7: eps^2 lambda / (2 + 2L) with eps = 1e-3; otherwise lambda / (2 + 2L).
    assert sharpness_bound(400.0, 1.0, eps=1e-3) == pytest.approx(1e-6 * 400.0 / 4.0)
    assert sharpness_bound(400.0, 1.0) == pytest.approx(100.0)
    assert sharpness_bound(10.0, 0.0) == pytest.approx(5.0)


@pytest.mark.parametrize("metric", ["riemannian", "euclidean"])
@pytest.mark.parametrize("bias", [True, False])
def test_operator_matvec_matches_dense_hessian(metric, bias):
    model = tiny_mlp(bias=bias)
    x, y = tiny_data()
    hessian, scale = dense_hessian(model, x, y)
    op = CurvatureOperator(model, CE, (x, y), metric=metric, batch_size=7)
    if metric == "riemannian":
        dense = scale[:, None] * hessian * scale[None, :]
        assert torch.equal(op.scales, scale)
    else:
        dense = hessian
        assert op.scales is None
    assert op.shape == tuple(dense.shape) and op.dtype == torch.float64 and op.device.type == "cpu"
    gen = torch.Generator().manual_seed(9)
    for count in (1, 2, 3):
        u = torch.randn(op.shape[1], generator=gen, dtype=torch.float64)
        assert torch.allclose(op.matvec(u), dense @ u, rtol=1e-10, atol=1e-12)
        assert op.num_hvp == count


def test_operator_to_scipy_eigsh_agrees_with_spectral_norm():
    model = tiny_mlp()
    data = tiny_data()
    op = CurvatureOperator(model, CE, data)
    linear = op.to_scipy()
    assert linear.shape == op.shape and linear.dtype == np.float64
    top = eigsh(linear, k=1, which="LA", tol=1e-12, return_eigenvectors=False)[0]
    assert abs(top - spectral_norm(op, tol=1e-12).value) <= 1e-8 * abs(top)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_spectral_norm_of_operator_equals_riemannian_spectral_norm(method):
    model = tiny_mlp()
    data = tiny_data()
    op = CurvatureOperator(model, CE, data, metric="riemannian")
    on_operator = spectral_norm(op, method=method, tol=1e-8, seed=2)
    one_line = riemannian_spectral_norm(model, CE, data, method=method, tol=1e-8, seed=2)
    assert on_operator.value == one_line.value and on_operator.history == one_line.history
    assert on_operator.num_hvp == one_line.num_hvp == op.num_hvp
    assert all(torch.equal(on_operator.eigenvector[n], one_line.eigenvector[n]) for n in one_line.eigenvector)
    assert trace(op, seed=1).value == riemannian_hessian_trace(model, CE, data, seed=1).value


def test_operator_rejects_unknown_metric():
    with pytest.raises(ValueError, match="'fisher'"):
        CurvatureOperator(tiny_mlp(), CE, tiny_data(), metric="fisher")


def test_graph_reuse_heuristic_reuses_for_a_single_batch():
    model = tiny_mlp()
    data = tiny_data()
    assert LossHessian(model, CE, data).reuse_graph
    assert LossHessian(model, CE, data, batch_size=7, reuse_graph=False).reuse_graph is False


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method must be one of"):
        riemannian_spectral_norm(tiny_mlp(), CE, tiny_data(), method="arnoldi")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu():
    model = tiny_mlp()
    x, y = tiny_data()
    cpu = riemannian_spectral_norm(model, CE, (x, y), tol=1e-12)
    gpu = riemannian_spectral_norm(model.cuda(), CE, (x.cuda(), y.cuda()), tol=1e-12)
    assert gpu.eigenvector["0.weight"].device.type == "cuda"
    assert gpu.value == pytest.approx(cpu.value, rel=1e-10)
