"""Eigensolvers for a symmetric operator given as ``apply(u) -> A u`` on flat float64 vectors.

Lanczos finds the largest algebraic eigenvalue (Definition 3); Algorithm 1 the one of
largest magnitude (see "Signs" in the package docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal


MIN_GAP_STEPS = 3
"""Lanczos steps (0-based) before the gap-based error estimate is trusted (see ``ritz_error``)."""


@dataclass(frozen=True)
class _Solution:
    """A solver's eigenvalue estimate, unit vector, products used, estimates, convergence and final residual."""

    value: float
    vector: torch.Tensor
    num_hvp: int
    history: tuple[float, ...]
    converged: bool
    residual: float
    error: float = math.nan
    """Lanczos: the estimate of |lambda - value| the stop used (``ritz_error``); power: NaN."""
    trace: tuple[tuple[float, float, float, float], ...] = ()
    """Lanczos: per step (theta, r, gap to the next Ritz value, that value's residual), for studies of the stop."""


def ritz_error(residual: float, gap: float, next_residual: float) -> float:
    """Estimate of |lambda - theta| for the top Ritz value theta from its residual r, the
    distance ``gap`` to the next Ritz value and that value's residual r2.

    Kato-Temple's r^2 / gap needs the gap to the next *eigenvalue*; the next Ritz value
    lies below it by up to about r2, so the gap is lowered by r2, and it is trusted only
    once that Ritz value has itself settled (r2 <= gap / 10) and the gap exceeds r.
    Otherwise the estimate is r, the bound that needs no gap.
    """
    resolved = gap - next_residual
    if resolved > residual and next_residual <= 0.1 * resolved:
        return min(residual, residual * residual / resolved)
    return residual


def lanczos(
    apply: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    *,
    tol: float,
    max_iter: int,
    stop_on: str = "value",
) -> _Solution:
    """Largest algebraic eigenvalue of a symmetric operator by Lanczos with full reorthogonalisation.

    ``stop_on="residual"`` stops on the relative residual r <= ``tol * |theta|`` instead:
    the vector's accuracy, which is what a warm stage hands on (the value converges
    like r^2 / gap, the vector only like r / gap).

    ``tol`` is the relative error of the returned eigenvalue: Lanczos stops once an
    estimate of |lambda_max - theta| falls below ``tol * |theta|``, on an invariant
    subspace (beta ~ 0: exact), or after ``max_iter`` products. The estimate is that of
    ``ritz_error``: the residual r = ||A y - theta y|| = beta_k |s_k| of the top Ritz
    pair puts an eigenvalue within r of theta (always true), and within r^2 / gap once
    the pair is isolated from the rest of the spectrum by gap (Kato-Temple), which is
    far smaller than r near convergence; the gap is estimated from the second Ritz
    value once it has settled (``ritz_error``). From a random start the eigenvalue found
    is lambda_max with probability one. What no Krylov stop can see: an eigenvalue
    within delta of lambda_max that the Krylov space has not yet separated from it
    (delta below about (lambda_max - lambda_min) / k^2 after k steps). The Ritz value then
    sits between the two and its error can reach delta although the estimate is below
    ``tol``; for tol >= delta that is within tol, for tol << delta it is not (the
    residual stop shares this, less often). The tests check tol on spectra with gaps of
    5 % and 30 % and on clusters narrower than tol.
    ``FlatnessResult.residual`` still reports r. The HVP's own rounding (about 1e-7
    relative for float32 HVPs) bounds what any ``tol`` can deliver against the exact
    Hessian; below that, use float64.
    The basis is kept (k vectors of the operator's size, in ``start``'s dtype) and
    reorthogonalised twice per step (classical Gram-Schmidt, "twice is enough").
    """
    if stop_on not in ("value", "residual"):
        raise ValueError(f"stop_on must be 'value' or 'residual', got {stop_on!r}")
    n = start.numel()
    steps = min(max_iter, n)
    basis = torch.empty((min(steps, 32), n), device=start.device, dtype=start.dtype)
    alphas: list[float] = []
    betas: list[float] = []
    history: list[float] = []
    trace: list[tuple[float, float, float, float]] = []
    q = start / start.norm()
    theta, s, residual, converged = 0.0, np.ones(1), math.inf, False
    eps = torch.finfo(start.dtype).eps
    for k in range(steps):
        if k == basis.shape[0]:
            basis = torch.cat([basis, torch.empty_like(basis[: min(basis.shape[0], steps - k)])])
        basis[k] = q
        w = apply(q)
        alpha = float(torch.dot(q, w))
        w = w - alpha * q
        if k > 0:
            w = w - betas[-1] * basis[k - 1]
        active = basis[: k + 1]
        for _ in range(2):
            w = w - active.T @ (active @ w)
        beta = float(w.norm())
        alphas.append(alpha)
        if k == 0:
            theta, s, error = alpha, np.ones(1), beta
            gap, next_residual = math.inf, math.inf
        else:
            vals, vecs = eigh_tridiagonal(np.array(alphas), np.array(betas), select="i", select_range=(k - 1, k))
            theta, s = float(vals[1]), vecs[:, 1]
            error = beta * abs(float(s[-1]))
            gap, next_residual = theta - float(vals[0]), beta * abs(float(vecs[-1, 0]))
            if k >= MIN_GAP_STEPS and stop_on == "value":  # fewer steps: the second Ritz value is a poor witness of the gap
                error = ritz_error(error, gap, next_residual)
        residual = beta * abs(float(s[-1]))
        history.append(theta)
        trace.append((theta, residual, gap, next_residual))
        scale_est = max(abs(h) for h in history)
        if error <= tol * abs(theta) or beta <= eps * max(scale_est, 1e-300) or k + 1 == n:
            converged = True
            break
        betas.append(beta)
        q = w / beta
    k_used = len(alphas)
    coeffs = torch.as_tensor(s, device=start.device, dtype=start.dtype)
    vector = basis[:k_used].T @ coeffs
    return _Solution(theta, vector / vector.norm(), k_used, tuple(history), converged, residual, error, tuple(trace))


def power_iteration(
    apply: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, *, tol: float, max_iter: int
) -> _Solution:
    """Algorithm 1 (Riemannian power method, thesis Sec. 3.4) in u coordinates.

    xi <- Hess xi / ||Hess xi||_g is u <- A u / ||A u||_2 here. Stops when the relative
    change of the vector, min(||u' - u||, ||u' + u||) (sign-blind so that a negative
    dominant eigenvalue can converge), falls below ``tol``. We measure the change in the
    metric norm, which is invariant under T_lambda; the authors' code used the Euclidean
    norm of xi, which is not (their iteration count depends on lambda). The value is the
    Rayleigh quotient g(xi, Hess xi) of the returned vector.
    """
    u = start / start.norm()
    history: list[float] = []
    value, change, converged = 0.0, math.inf, False
    for _ in range(max_iter):
        w = apply(u)
        value = float(torch.dot(u, w))
        history.append(value)
        norm = w.norm()
        if norm == 0:  # u in the null space: A u = 0 exactly
            change, converged = 0.0, True
            break
        nxt = w / norm
        change = float(torch.minimum((nxt - u).norm(), (nxt + u).norm()))
        if change < tol:
            converged = True
            break
        u = nxt
    return _Solution(value, u, len(history), tuple(history), converged, change)
