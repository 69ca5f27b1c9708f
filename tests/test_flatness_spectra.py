"""Top-k eigenpairs, per-block spectral norms, spectral density and the spread over subsets (issue #16, parts 2-3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from flatscape.core.flatness import (
    CurvatureOperator,
    block_spectral_norms,
    layer_groups,
    metric_inner,
    parameter_blocks,
    rescale,
    riemannian_hvp,
    riemannian_spectral_norm,
    spectral_density,
    spread,
    top_eigenpairs,
)
from test_flatness import CE, dense_hessian, random_lambdas, tiny_data, tiny_mlp

pytestmark = pytest.mark.usefixtures("one_thread")


def dense_a(model, x, y, metric):
    hessian, scale = dense_hessian(model, x, y)
    return hessian if metric == "euclidean" else scale[:, None] * hessian * scale[None, :]


@pytest.mark.parametrize("metric", ["riemannian", "euclidean"])
def test_top_eigenpairs_match_the_dense_spectrum(metric):
    model = tiny_mlp()
    x, y = tiny_data()
    exact = torch.linalg.eigvalsh(dense_a(model, x, y, metric)).flip(0)[:4]
    op = CurvatureOperator(model, CE, (x, y), metric=metric)
    pairs = top_eigenpairs(op, 4, tol=1e-10)
    assert pairs.converged and pairs.num_hvp == op.num_hvp and len(pairs.vectors) == 4
    assert np.allclose(pairs.values, exact.numpy(), rtol=1e-8, atol=0)
    assert max(pairs.residuals) <= 1e-10 * abs(pairs.values[0])
    if metric == "riemannian":
        # Hess xi = lambda xi and the vectors are g-orthonormal (the metric of Sec. 3.3).
        for value, xi in zip(pairs.values, pairs.vectors):
            image = riemannian_hvp(model, CE, (x, y), xi)
            assert all(torch.allclose(image[n], value * xi[n], atol=1e-7) for n in xi)
        gram = [[metric_inner(model, a, b).item() for b in pairs.vectors] for a in pairs.vectors]
        assert np.allclose(gram, np.eye(4), atol=1e-8)


def test_top_eigenpairs_continue_past_an_invariant_subspace():
    # diag(5, 4, 3, 0...): a start in span(e0, e1) closes after 2 steps; the restart finds 3.
    eigenvalues = torch.tensor([5.0, 4.0, 3.0] + [0.0] * 7, dtype=torch.float64)
    model = nn.Linear(10, 1, bias=False).double()  # only to build an operator whose matvec we replace
    op = CurvatureOperator(model, lambda out, y: (out**2).mean(), (torch.zeros(1, 10, dtype=torch.float64), torch.zeros(1)), metric="euclidean")
    op.matvec = lambda u: eigenvalues * u
    pairs = top_eigenpairs(op, 3, tol=1e-12, max_hvp=10)
    assert pairs.converged and np.allclose(pairs.values, [5.0, 4.0, 3.0], rtol=1e-12)


def test_top_eigenpairs_invariant_under_rescaling():
    model = tiny_mlp()
    data = tiny_data()
    base = top_eigenpairs(CurvatureOperator(model, CE, data), 3, tol=1e-11)
    moved = top_eigenpairs(CurvatureOperator(rescale(model, random_lambdas(3, 5)), CE, data), 3, tol=1e-11)
    assert np.allclose(base.values, moved.values, rtol=1e-10, atol=0)


@pytest.mark.parametrize("k, max_hvp, message", [(0, 10, "k must be"), (10**6, 10**6, "k must be"), (5, 3, "max_hvp")])
def test_top_eigenpairs_reject_bad_requests(k, max_hvp, message):
    with pytest.raises(ValueError, match=message):
        top_eigenpairs(CurvatureOperator(tiny_mlp(), CE, tiny_data()), k, max_hvp=max_hvp)


@pytest.mark.parametrize("metric", ["riemannian", "euclidean"])
def test_block_spectral_norms_are_the_top_eigenvalues_of_the_diagonal_blocks(metric):
    model = tiny_mlp()
    x, y = tiny_data()
    dense = dense_a(model, x, y, metric)
    op = CurvatureOperator(model, CE, (x, y), metric=metric)
    sizes = [p.numel() for _, p in parameter_blocks(model)]
    bounds = dict(zip(op.names, zip(np.cumsum([0] + sizes[:-1]), np.cumsum(sizes))))
    per_block = block_spectral_norms(op, tol=1e-11)
    assert list(per_block) == op.names
    for name, (lo, hi) in bounds.items():
        assert per_block[name].value == pytest.approx(torch.linalg.eigvalsh(dense[lo:hi, lo:hi])[-1].item(), rel=1e-9)
    per_layer = block_spectral_norms(op, layer_groups(op.names), tol=1e-11)
    assert list(per_layer) == ["0", "2", "4"] and per_layer["2"].names == ("2.weight", "2.bias")
    idx = torch.cat([torch.arange(*bounds["2.weight"]), torch.arange(*bounds["2.bias"])])
    assert per_layer["2"].value == pytest.approx(torch.linalg.eigvalsh(dense[idx][:, idx])[-1].item(), rel=1e-9)
    # each diagonal block's top eigenvalue is at most the whole operator's (Cauchy interlacing)
    assert max(v.value for v in per_layer.values()) <= torch.linalg.eigvalsh(dense)[-1].item() * (1 + 1e-9)


def test_block_spectral_norms_reject_unknown_names():
    op = CurvatureOperator(tiny_mlp(), CE, tiny_data())
    with pytest.raises(ValueError, match="unknown: \\['9.weight'\\]"):
        block_spectral_norms(op, {"x": ["9.weight"]})


@pytest.mark.parametrize("metric", ["riemannian", "euclidean"])
def test_spectral_density_quadrature_is_exact_for_low_degree_moments(metric):
    model = tiny_mlp()
    x, y = tiny_data()
    dense = dense_a(model, x, y, metric)
    n = dense.shape[0]
    steps, probes = 6, 3
    result = spectral_density(CurvatureOperator(model, CE, (x, y), metric=metric), steps=steps, probes=probes, seed=4)
    assert result.num_hvp == steps * probes and result.dimension == n and result.metric == metric
    gen = torch.Generator().manual_seed(4)
    for p in range(probes):
        z = torch.randint(0, 2, (n,), generator=gen, dtype=torch.int8).to(torch.float64) * 2 - 1
        z = z / z.norm()
        power = z.clone()
        for q in range(2 * steps):  # degree <= 2m - 1: Gauss quadrature is exact
            quad = float(np.sum(result.weights[p] * result.nodes[p] ** q))
            exact = float(z @ power)
            assert quad == pytest.approx(exact, rel=1e-8, abs=1e-12 * abs(exact) + 1e-14), (p, q)
            power = dense @ power
    grid = np.linspace(result.nodes.min() - 1, result.nodes.max() + 1, 4001)
    assert np.trapezoid(result.density(grid, sigma=0.05), grid) == pytest.approx(1.0, abs=1e-6)


def test_spectral_density_with_full_steps_recovers_the_spectrum():
    model = tiny_mlp(bias=False)
    x, y = tiny_data()
    dense = dense_a(model, x, y, "riemannian")
    eigenvalues = torch.linalg.eigvalsh(dense).numpy()
    result = spectral_density(CurvatureOperator(model, CE, (x, y)), steps=dense.shape[0], probes=2)
    for p in range(2):
        found = result.nodes[p][result.weights[p] > 1e-10]
        assert all(np.min(np.abs(eigenvalues - v)) < 1e-8 * np.abs(eigenvalues).max() for v in found)
        assert found.max() == pytest.approx(eigenvalues[-1], rel=1e-8)  # the extremes are always resolved


def test_spread_measures_disjoint_strided_subsets_and_the_whole():
    model = tiny_mlp()
    x, y = tiny_data(n=30)
    op = CurvatureOperator(model, CE, [(x[:11], y[:11]), (x[11:], y[11:])])
    result = spread(op, 3, tol=1e-11)
    for b in range(3):
        alone = riemannian_spectral_norm(model, CE, (x[b::3], y[b::3]), tol=1e-11).value
        assert result.values[b] == pytest.approx(alone, rel=1e-9)
    assert result.sizes == (10, 10, 10) and result.full_size == 30 and result.converged
    assert result.full == pytest.approx(riemannian_spectral_norm(model, CE, (x, y), tol=1e-11).value, rel=1e-9)
    assert result.mean == pytest.approx(np.mean(result.values)) and result.std == pytest.approx(np.std(result.values, ddof=1))
    assert result.min == min(result.values) < result.max == max(result.values)
    moved = spread(CurvatureOperator(rescale(model, random_lambdas(3, 8)), CE, (x, y)), 3, tol=1e-11)
    assert np.allclose(moved.values, result.values, rtol=1e-9) and math.isclose(moved.full, result.full, rel_tol=1e-9)


@pytest.mark.parametrize("subsets, message", [(0, "subsets must be"), (41, "cannot split 40 samples")])
def test_spread_rejects_bad_subset_counts(subsets, message):
    with pytest.raises(ValueError, match=message):
        spread(CurvatureOperator(tiny_mlp(), CE, tiny_data()), subsets)
