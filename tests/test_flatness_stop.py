"""Lanczos's eigenvalue-error stop and the automatic warm start (issue 24, items 1-2)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from flatscape.core.flatness import (
    WarmStage,
    auto_warm_start,
    euclidean_spectral_norm,
    lanczos,
    riemannian_spectral_norm,
)
from flatscape.core.flatness.defaults import AUTO_WARM_FRACTION, AUTO_WARM_MIN_SAMPLES, MIN_WARM_SAMPLES
from flatscape.core.flatness.solvers import ritz_error

pytestmark = pytest.mark.usefixtures("one_thread")

CE = nn.functional.cross_entropy


def matrix_with_top_gap(n: int, gap: float, seed: int) -> torch.Tensor:
    """Symmetric n x n with lambda_max = 1, lambda_2 = 1 - gap, the rest uniform in [-0.6, 1 - gap]."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.rand(n, generator=g, dtype=torch.float64) * (1.6 - gap) - 0.6
    lam[0], lam[1] = 1.0, 1.0 - gap
    a = q @ torch.diag(lam) @ q.T
    return (a + a.T) / 2


def solve(a: torch.Tensor, tol: float, seed: int):
    start = torch.randn(a.shape[0], generator=torch.Generator().manual_seed(seed + 1000), dtype=torch.float64)
    return lanczos(lambda u: a @ u, start, tol=tol, max_iter=a.shape[0])


@pytest.mark.parametrize("gap", [0.3, 0.05])
@pytest.mark.parametrize("tol", [1e-4, 1e-6])
def test_lanczos_value_is_within_tol_of_the_dense_eigenvalue(gap, tol):
    for seed in range(12):
        a = matrix_with_top_gap(80, gap, seed)
        exact = float(torch.linalg.eigvalsh(a)[-1])
        sol = solve(a, tol, seed)
        assert sol.converged
        assert abs(sol.value - exact) <= tol * abs(exact), (seed, sol.num_hvp)


@pytest.mark.parametrize("tol", [1e-4, 1e-6])
def test_a_cluster_narrower_than_tol_never_stops_outside_tol(tol):
    for seed in range(12):
        a = matrix_with_top_gap(80, tol / 100, seed)
        exact = float(torch.linalg.eigvalsh(a)[-1])
        sol = solve(a, tol, seed)
        assert abs(sol.value - exact) <= tol * abs(exact), (seed, sol.num_hvp)


def test_the_stop_is_on_the_eigenvalue_error_not_the_residual():
    # With a wide gap the eigenvalue converges like the residual squared: the stop comes
    # while the residual is still far above tol, and the value is right all the same.
    a = matrix_with_top_gap(80, 0.3, seed=0)
    exact = float(torch.linalg.eigvalsh(a)[-1])
    sol = solve(a, 1e-8, seed=0)
    assert sol.residual > 1e-8 * abs(sol.value)
    assert abs(sol.value - exact) <= 1e-8 * abs(exact)


def test_residual_stop_bounds_the_residual_and_is_the_slower_stop():
    a = matrix_with_top_gap(80, 0.3, seed=3)
    by_value = solve(a, 1e-6, seed=3)
    start = torch.randn(80, generator=torch.Generator().manual_seed(1003), dtype=torch.float64)
    by_residual = lanczos(lambda u: a @ u, start, tol=1e-6, max_iter=80, stop_on="residual")
    assert by_residual.residual <= 1e-6 * abs(by_residual.value)
    assert by_residual.num_hvp > by_value.num_hvp
    with pytest.raises(ValueError, match="stop_on"):
        lanczos(lambda u: a @ u, start, tol=1e-6, max_iter=80, stop_on="vector")


def test_ritz_error_falls_back_to_the_residual_until_the_gap_is_resolved():
    assert ritz_error(1e-2, 1.0, 1e-3) == pytest.approx(1e-4 / (1.0 - 1e-3))
    assert ritz_error(1e-2, 1.0, 0.5) == 1e-2  # the next Ritz value has not settled
    assert ritz_error(0.5, 0.4, 0.0) == 0.5  # gap below the residual: not resolved


def explicit_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    shapes = [p.shape for p in model.parameters()]

    def loss(v):
        parts, i = {}, 0
        for name, shape in zip(names, shapes):
            parts[name] = v[i : i + shape.numel()].reshape(shape)
            i += shape.numel()
        return CE(functional_call(model, parts, (x,)), y)

    return torch.autograd.functional.hessian(loss, flat)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_measure_is_within_tol_of_the_explicit_hessian(seed, tol):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(50, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (50,), generator=g)
    exact = float(torch.linalg.eigvalsh(explicit_hessian(model, x, y))[-1])
    res = euclidean_spectral_norm(model, CE, (x, y), tol=tol, warm_start=())
    assert res.converged and abs(res.value - exact) <= tol * abs(exact)


@pytest.mark.parametrize("tol", [0.0, 1.0, -1e-3, 2.0])
def test_tol_outside_zero_one_is_refused(tol):
    with pytest.raises(ValueError, match="tol"):
        euclidean_spectral_norm(nn.Linear(3, 2).double(), CE, (torch.randn(4, 3).double(), torch.tensor([0, 1, 0, 1])), tol=tol)


def test_max_hvp_below_one_is_refused():
    with pytest.raises(ValueError, match="max_hvp"):
        euclidean_spectral_norm(nn.Linear(3, 2).double(), CE, (torch.randn(4, 3).double(), torch.tensor([0, 1, 0, 1])), max_hvp=0)


def data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def test_auto_warm_start_needs_enough_samples_in_the_subsample():
    stride = round(1 / AUTO_WARM_FRACTION)
    enough = AUTO_WARM_MIN_SAMPLES * stride
    assert auto_warm_start(data(enough - stride)) == ()
    assert auto_warm_start(data(enough)) == (WarmStage(fraction=AUTO_WARM_FRACTION),)
    # counted over all batches, each strided on its own
    half = data(enough // 2)
    assert auto_warm_start([half, half]) == (WarmStage(fraction=AUTO_WARM_FRACTION),)


def test_auto_picks_bf16_for_big_conv_free_models_on_a_fast_bf16_cpu(monkeypatch):
    from flatscape.core.flatness import measures

    big = data(2000)
    mlp = nn.Sequential(nn.Linear(4, 700), nn.Tanh(), nn.Linear(700, 3))  # 5,600 parameters: 1.1e7 per HVP
    conv = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(4, 3))
    bf16, sub = (WarmStage(dtype=torch.bfloat16),), (WarmStage(fraction=AUTO_WARM_FRACTION),)
    monkeypatch.setattr(measures, "fast_bfloat16", lambda device: True)
    monkeypatch.setattr(measures, "AUTO_WARM_BF16_MIN_WORK", 10**7)
    assert auto_warm_start(big, model=mlp, device="cpu", dtype=torch.float32) == bf16
    assert auto_warm_start(big, model=mlp, device="cpu", dtype=torch.float64) == bf16
    assert auto_warm_start(big, model=mlp, device="cpu", dtype=torch.bfloat16) == sub  # nothing cheaper than bf16
    assert auto_warm_start(big, model=conv, device="cpu", dtype=torch.float32) == sub  # bf16 convolutions did not pay
    assert auto_warm_start(big, model=mlp, device="meta", dtype=torch.float32) == sub  # GPUs: not measured yet
    assert auto_warm_start(data(200), model=mlp, device="cpu", dtype=torch.float32) == ()  # 1.1e6: too small
    assert auto_warm_start(big) == sub  # without the model and device: the subsample rule alone
    monkeypatch.setattr(measures, "fast_bfloat16", lambda device: False)
    assert auto_warm_start(big, model=mlp, device="cpu", dtype=torch.float32) == sub


def test_fast_bfloat16_answers_for_any_device():
    from flatscape.core.flatness import fast_bfloat16

    assert fast_bfloat16("meta") is False
    assert isinstance(fast_bfloat16("cpu"), bool)
    if not torch.cuda.is_available():
        assert isinstance(fast_bfloat16(torch.device("cpu")), bool)


def test_default_call_warm_starts_large_data_and_not_small_with_the_cold_value():
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    big = data(AUTO_WARM_MIN_SAMPLES * round(1 / AUTO_WARM_FRACTION))
    auto = riemannian_spectral_norm(model, CE, big, tol=1e-8)
    cold = riemannian_spectral_norm(model, CE, big, tol=1e-8, warm_start=())
    assert len(auto.warm_hvp) == 1 and cold.warm_hvp == ()
    assert abs(auto.value - cold.value) <= 1e-8 * abs(cold.value) * 2
    small = riemannian_spectral_norm(model, CE, data(200), tol=1e-8)
    assert small.warm_hvp == ()
    power = riemannian_spectral_norm(model, CE, big, method="power", tol=1e-6)
    assert power.warm_hvp == ()  # Algorithm 1 stays as the thesis runs it


def test_a_warm_stage_below_min_warm_samples_is_skipped_and_reported(caplog):
    model = nn.Linear(4, 3).double()
    x, y = data(40)
    cold = euclidean_spectral_norm(model, CE, (x, y), tol=1e-6, warm_start=())
    with caplog.at_level("WARNING", logger="flatscape.core.flatness.measures"):
        res = euclidean_spectral_norm(model, CE, (x, y), tol=1e-6, warm_start=[WarmStage(fraction=0.05)])
    assert 40 // 20 < MIN_WARM_SAMPLES
    assert res.warm_hvp == (0,)  # the stage is listed, with no HVPs
    assert res.value == cold.value and res.num_hvp == cold.num_hvp  # the cold start's seeded run, unchanged
    assert "warm_start[0] skipped" in caplog.text and "MIN_WARM_SAMPLES" in caplog.text
    # a kept stage after a skipped one still runs, and its count sits in its own slot
    both = euclidean_spectral_norm(model, CE, (x, y), tol=1e-6, warm_start=[WarmStage(fraction=0.05), WarmStage(fraction=1 / 5)])
    assert both.warm_hvp[0] == 0 and both.warm_hvp[1] > 0


@pytest.mark.parametrize("bad", ["yes", None, 5, WarmStage(fraction=0.5), [WarmStage(), "stage"], {"fraction": 0.05}])
def test_warm_start_other_than_auto_stages_or_empty_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="warm_start"):
        euclidean_spectral_norm(nn.Linear(4, 3).double(), CE, data(40), warm_start=bad)


def test_the_result_reports_the_stops_error_estimate_and_its_trace():
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    x, y = torch.randn(50, 6, dtype=torch.float64), torch.randint(0, 3, (50,))
    res = euclidean_spectral_norm(model, CE, (x, y), tol=1e-6, warm_start=())
    assert res.converged and 0 <= res.error <= 1e-6 * abs(res.value)
    assert len(res.trace) == res.num_hvp and res.trace[-1][0] == res.value
    exact = float(torch.linalg.eigvalsh(explicit_hessian(model, x, y))[-1])
    assert abs(res.value - exact) <= max(res.error, 1e-12 * abs(exact))  # the estimate bounds the true error here
    power = euclidean_spectral_norm(model, CE, (x, y), tol=1e-6, method="power", warm_start=())
    assert power.error != power.error and power.trace == ()  # NaN: Algorithm 1 has no eigenvalue-error estimate
