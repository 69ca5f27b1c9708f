"""Spectra beyond the top eigenvalue of A = S H S (beyond the thesis): the top k eigenpairs,
the spectral norms of A's diagonal blocks (per parameter tensor or per layer), and the
spectral density by stochastic Lanczos quadrature.

All three act on a ``CurvatureOperator``, so each exists for the Riemannian metric
(invariant under the symmetries of ``symmetry``: A itself is) and for the Euclidean
one (S = I, A = H). Random vectors are drawn on the CPU in float64 from ``seed``.

The diagonal block A_gg = S_g H_gg S_g of a group g of blocks is the curvature of the
loss along g's parameters alone, in the metric's units; its largest eigenvalue is the
Definition 3 value of the network with every other parameter frozen.

Stochastic Lanczos quadrature (Golub & Meurant; Ubaru, Chen & Saad 2017; the density
of Ghorbani et al. 2019 and PyHessian): for a unit probe v, m Lanczos steps give the
tridiagonal T_m = Y diag(theta) Y^T, and sum_j Y_1j^2 f(theta_j) equals v^T f(A) v
exactly for every polynomial f of degree <= 2m - 1. With E[v v^T] = I / n over
Rademacher probes, the average over probes of sum_j Y_1j^2 delta(t - theta_j) is an
unbiased estimate of the eigenvalue density (1/n) sum_i delta(t - lambda_i) tested
against such polynomials; smoothing each node by a Gaussian of width ``sigma`` gives a
curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from flatscape.core.flatness.defaults import DEFAULT_MAX_HVP, DEFAULT_SEED, DEFAULT_TOL, SOLVER_DTYPE
from flatscape.core.flatness.operator import CurvatureOperator
from flatscape.core.flatness.solvers import lanczos

Apply = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Eigenpairs:
    """The k largest eigenvalues of A (descending), their unit tangent vectors and Ritz residuals."""

    values: tuple[float, ...]
    vectors: tuple[dict[str, torch.Tensor], ...] = field(repr=False)
    residuals: tuple[float, ...]
    num_hvp: int
    converged: bool
    metric: str


@dataclass(frozen=True)
class BlockValue:
    """Largest eigenvalue of one diagonal block A_gg, over the parameter tensors ``names``."""

    value: float
    names: tuple[str, ...]
    size: int
    num_hvp: int
    converged: bool


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature: ``nodes[p, j]`` with ``weights[p, j]`` for probe p.

    Each probe's weights sum to 1; the estimated density is their average over probes.
    """

    nodes: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    dimension: int
    num_hvp: int
    metric: str

    def moment(self, power: int) -> float:
        """Estimate of tr(A^power) / n (exact per probe for power <= 2 * steps - 1)."""
        return float(np.mean(np.sum(self.weights * self.nodes**power, axis=1)))

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """The density on ``grid``, each node a Gaussian of width ``sigma`` (default: 1% of the nodes' range)."""
        grid = np.asarray(grid, dtype=np.float64)
        if sigma is None:
            used = self.nodes[self.weights > 0]
            span = float(used.max() - used.min()) if used.size else 0.0
            sigma = 0.01 * span if span > 0 else 1.0
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        z = (grid[:, None, None] - self.nodes[None]) / sigma
        kernel = np.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))
        return np.mean(np.sum(self.weights[None] * kernel, axis=2), axis=1)


def _random_unit(n: int, gen: torch.Generator, device: torch.device, mask: torch.Tensor | None) -> torch.Tensor:
    u = torch.randn(n, generator=gen, dtype=SOLVER_DTYPE).to(device)
    if mask is not None:
        u = torch.where(mask, torch.zeros_like(u), u)
    return u / u.norm()


class _Basis:
    """The Lanczos vectors as rows of one growing buffer (stacking a list anew each step
    would copy k vectors of the operator's size per product)."""

    def __init__(self, first: torch.Tensor, capacity: int) -> None:
        self.rows = torch.empty((max(1, min(capacity, 32)), first.numel()), device=first.device, dtype=first.dtype)
        self.rows[0] = first
        self.count = 1
        self.capacity = capacity

    def active(self) -> torch.Tensor:
        return self.rows[: self.count]

    def orthogonalise(self, w: torch.Tensor) -> torch.Tensor:
        """w minus its projection on the basis, twice (classical Gram-Schmidt: "twice is enough")."""
        active = self.active()
        for _ in range(2):
            w = w - active.T @ (active @ w)
        return w

    def append(self, q: torch.Tensor) -> None:
        if self.count == self.rows.shape[0]:
            extra = min(self.rows.shape[0], max(1, self.capacity - self.count))
            self.rows = torch.cat([self.rows, torch.empty_like(self.rows[:extra])])
        self.rows[self.count] = q
        self.count += 1


def _lanczos_step(apply: Apply, basis: _Basis, beta_prev: float) -> tuple[float, torch.Tensor]:
    """One step with full reorthogonalisation: alpha_k and the unnormalised next vector."""
    q = basis.rows[basis.count - 1]
    w = apply(q)
    alpha = float(torch.dot(q, w))
    w = w - alpha * q
    if basis.count > 1:
        w = w - beta_prev * basis.rows[basis.count - 2]
    return alpha, basis.orthogonalise(w)


def top_eigenpairs(
    op: CurvatureOperator,
    k: int,
    *,
    tol: float = DEFAULT_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    seed: int = DEFAULT_SEED,
) -> Eigenpairs:
    """The ``k`` largest eigenvalues of A with eigenvectors, by Lanczos with full reorthogonalisation.

    Stops when every one of the top k Ritz pairs has residual ||A y - theta y|| =
    beta |s_last| below ``tol`` times the largest |theta| of the k (the spectrum's
    scale, so an eigenvalue near zero does not demand an absolute residual of zero),
    or after ``max_hvp`` products. On an invariant subspace the iteration continues
    from a fresh random vector orthogonal to the basis, so k values are found even
    when a start vector misses part of the spectrum. An eigenvalue of multiplicity m
    appears once per Krylov direction that reaches it: Lanczos may report fewer than
    m copies until rounding excites them.
    """
    n = op.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the operator's size {n}, got {k}")
    if max_hvp < k:
        raise ValueError(f"max_hvp ({max_hvp}) must be at least k ({k})")
    gen = torch.Generator().manual_seed(seed)
    mask = None if op.scales is None else op.scales == 0
    steps = min(max_hvp, n)
    basis = _Basis(_random_unit(n, gen, op.device, mask), steps)
    alphas: list[float] = []
    betas: list[float] = []
    eps = torch.finfo(SOLVER_DTYPE).eps
    converged = False
    vals = vecs = residuals = None  # set by the first step (max_hvp >= k >= 1)
    for step in range(steps):
        alpha, w = _lanczos_step(op.matvec, basis, betas[-1] if betas else 0.0)
        alphas.append(alpha)
        beta = float(w.norm())
        vals, vecs = eigh_tridiagonal(np.array(alphas), np.array(betas)) if step else (np.array([alpha]), np.ones((1, 1)))
        top = np.argsort(vals)[::-1][:k]
        scale = max(float(np.max(np.abs(vals))), 1e-300)
        residuals = beta * np.abs(vecs[-1, top])
        if len(top) == k and np.all(residuals <= tol * max(np.max(np.abs(vals[top])), 1e-300)):
            converged = True
            break
        if step + 1 == steps:
            break
        if beta <= eps * scale:  # invariant subspace: restart orthogonally to it
            fresh = basis.orthogonalise(_random_unit(n, gen, op.device, mask))
            beta, w = 0.0, fresh
            if float(fresh.norm()) <= eps:
                converged = True  # the Krylov spaces span the whole (masked) space: the Ritz values are exact
                break
        betas.append(beta)
        basis.append(w / w.norm())
    top = np.argsort(vals)[::-1][:k]
    stacked = basis.active()[: len(alphas)]
    vectors = []
    for j in top:
        y = stacked.T @ torch.as_tensor(vecs[:, j], device=op.device, dtype=SOLVER_DTYPE)
        vectors.append(op.tangent(y / y.norm()))
    return Eigenpairs(
        values=tuple(float(v) for v in vals[top]),
        vectors=tuple(vectors),
        residuals=tuple(float(r) for r in residuals),
        num_hvp=len(alphas),
        converged=converged,
        metric=op.metric,
    )


def layer_groups(names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Blocks grouped by the module that owns them (``"layer1.0.conv1.weight"`` -> ``"layer1.0.conv1"``),
    in order of first appearance: a layer's weight and bias form one group."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.rpartition(".")[0] or name, []).append(name)
    return {g: tuple(members) for g, members in groups.items()}


def block_spectral_norms(
    op: CurvatureOperator,
    groups: Mapping[str, Sequence[str]] | None = None,
    *,
    tol: float = DEFAULT_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    seed: int = DEFAULT_SEED,
) -> dict[str, BlockValue]:
    """Largest eigenvalue of each diagonal block A_gg of A (see the module docstring).

    ``groups`` maps a label to the block names it holds (default: one group per
    parameter tensor; ``layer_groups(op.names)`` gives one per layer). Each group is a
    Lanczos run on u_g -> (A [u_g; 0])_g; every product is a full HVP, so the cost is
    about the number of groups times that of ``spectral_norm``. A group whose blocks
    all have norm zero (outside the quotient manifold) has value 0 and costs nothing.
    """
    sizes = [int(np.prod(s)) for s in (t.shape for t in op.hessian.params)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    where = {name: (int(offsets[i]), int(offsets[i + 1])) for i, name in enumerate(op.names)}
    groups = {name: (name,) for name in op.names} if groups is None else {g: tuple(m) for g, m in groups.items()}
    unknown = sorted({m for members in groups.values() for m in members} - set(where))
    if unknown or any(not members for members in groups.values()):
        raise ValueError(f"groups must be non-empty lists of block names; unknown: {unknown}")
    out = {}
    for label, members in groups.items():
        index = torch.cat([torch.arange(*where[m], device=op.device) for m in members])
        gen = torch.Generator().manual_seed(seed)
        start = torch.randn(len(index), generator=gen, dtype=SOLVER_DTYPE).to(op.device)
        if op.scales is not None:
            start = torch.where(op.scales[index] == 0, torch.zeros_like(start), start)
        if float(start.norm()) == 0.0:
            out[label] = BlockValue(0.0, members, len(index), 0, True)
            continue

        def restricted(u: torch.Tensor, index: torch.Tensor = index) -> torch.Tensor:
            full = torch.zeros(op.shape[0], device=op.device, dtype=SOLVER_DTYPE)
            full[index] = u
            return op.matvec(full)[index]

        sol = lanczos(restricted, start, tol=tol, max_iter=max_hvp)
        out[label] = BlockValue(sol.value, members, len(index), sol.num_hvp, sol.converged)
    return out


def spectral_density(
    op: CurvatureOperator,
    *,
    steps: int = 80,
    probes: int = 10,
    seed: int = DEFAULT_SEED,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature of A's eigenvalue density: ``probes`` Rademacher probes,
    ``steps`` Lanczos steps each (full reorthogonalisation), ``steps * probes`` HVPs.

    A probe whose Krylov space closes early (beta ~ 0) stops there: its quadrature is
    then exact for every polynomial.
    """
    if steps < 1 or probes < 1:
        raise ValueError(f"steps and probes must be >= 1, got steps={steps}, probes={probes}")
    n = op.shape[0]
    steps = min(steps, n)
    gen = torch.Generator().manual_seed(seed)
    eps = torch.finfo(SOLVER_DTYPE).eps
    nodes = np.zeros((probes, steps))
    weights = np.zeros((probes, steps))
    used = 0
    for p in range(probes):
        z = torch.randint(0, 2, (n,), generator=gen, dtype=torch.int8).to(SOLVER_DTYPE) * 2 - 1
        basis = _Basis((z / z.norm()).to(op.device), steps)
        alphas: list[float] = []
        betas: list[float] = []
        for step in range(steps):
            alpha, w = _lanczos_step(op.matvec, basis, betas[-1] if betas else 0.0)
            alphas.append(alpha)
            beta = float(w.norm())
            if step + 1 == steps or beta <= eps * max(abs(a) for a in alphas + [1e-300]):
                break
            betas.append(beta)
            basis.append(w / beta)
        used += len(alphas)
        if len(alphas) == 1:
            theta, first = np.array(alphas), np.ones(1)
        else:
            theta, vecs = eigh_tridiagonal(np.array(alphas), np.array(betas))
            first = vecs[0]
        nodes[p, : len(theta)] = theta
        weights[p, : len(theta)] = first**2
    return SpectralDensity(nodes, weights, n, used, op.metric)
