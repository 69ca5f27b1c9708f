"""PAC-Bayes flatness and its magnitude-aware variant (Jiang et al., "Fantastic Generalization
Measures and Where to Find Them", ICLR 2020): the largest noise level whose expected increase of
the training criterion stays below a bound, found by bisection."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from flatscape.core.flatness.batches import Data, LossFn
from flatscape.core.flatness.defaults import DEFAULT_BATCH_SIZE, DEFAULT_SEED
from flatscape.core.flatness.perturbation import DEFAULT_PAC_BAYES_BOUND, DEFAULT_PAC_BAYES_EPS, DEFAULT_PAC_BAYES_STEPS, DEFAULT_SAMPLES, MeasureResult, PAC_BAYES_CRITERIA, _Point, _axpy, _positive


# ---- PAC-Bayes flatness (Jiang et al. 2020) --------------------------------------------------


def _largest_sigma(increase: Callable[[float], float], bound: float, steps: int) -> tuple[float, float]:
    """The largest sigma with increase(sigma) <= bound: a power of two bracket, then ``steps``
    bisections at the geometric midpoint (so the relative precision is 2^(2^-steps) whatever
    the scale; a plain bisection of [0, 1] would resolve a sigma of 1e-3 to only ~10%).

    Returns (sigma, increase at sigma); sigma 0.0 when even 2^-60 exceeds the bound. ``increase``
    is evaluated on the same noise draws at every sigma (common random numbers), so it is a
    deterministic function of sigma.
    """
    lo = 1.0
    if increase(lo) > bound:
        for _ in range(60):
            lo /= 2.0
            if increase(lo) <= bound:
                break
        else:
            return 0.0, increase(0.0)
        hi = 2.0 * lo
    else:
        for _ in range(60):  # beyond 2^60 no perturbation of this scale matters
            if increase(2.0 * lo) > bound:
                break
            lo *= 2.0
        hi = 2.0 * lo
    for _ in range(steps):
        mid = math.sqrt(lo * hi)
        if increase(mid) > bound:
            hi = mid
        else:
            lo = mid
    return lo, increase(lo)


def pac_bayes_flatness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    magnitude: bool = False,
    bound: float = DEFAULT_PAC_BAYES_BOUND,
    samples: int = DEFAULT_SAMPLES,
    steps: int = DEFAULT_PAC_BAYES_STEPS,
    criterion: str = "error",
    eps: float = DEFAULT_PAC_BAYES_EPS,
    seed: int = DEFAULT_SEED,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
) -> MeasureResult:
    """PAC-Bayes flatness 1 / sigma'^2 (Jiang et al., "Fantastic Generalization Measures and
    Where to Find Them", ICLR 2020, measure pacbayes.flatness), or with ``magnitude=True``
    its magnitude-aware variant 1 / alpha'^2 (pacbayes.mag.flatness).

    sigma' is the largest sigma for which the expected increase of the training
    ``criterion`` under u ~ N(0, sigma^2 I) stays at most ``bound``:
    E_u[C(w + u)] - C(w) <= bound; magnitude-aware, u_i ~ N(0, alpha^2 w_i^2 + eps^2).
    ``criterion="error"`` is Jiang et al.'s (the 0-1 training error, bound 0.1, eps
    1e-3); ``"loss"`` uses the mean ``loss_fn``. The expectation is a Monte Carlo mean
    over ``samples`` seeded draws z_k, u = sigma z_k (or sqrt(alpha^2 w^2 + eps^2) z_k),
    the same draws at every sigma; sigma is bracketed between powers of two and refined
    by ``steps`` geometric bisections. The value is 1 / sigma'^2 (``info["sigma"]`` holds sigma'); infinite when
    not even sigma -> 0 keeps the increase within ``bound`` (eps alone exceeds it).
    The magnitude-aware value with ``eps=0`` is invariant under T_lambda; the isotropic
    one is not.
    """
    bound = _positive("bound", bound)
    samples = _positive("samples", samples, integer=True)
    steps = _positive("steps", steps, integer=True)
    if criterion not in PAC_BAYES_CRITERIA:
        raise ValueError(f"criterion must be one of {PAC_BAYES_CRITERIA}, got {criterion!r}")
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a non-negative finite number, got {eps!r}")
    point = _Point(model, loss_fn, data, batch_size)
    evaluate = point.error if criterion == "error" else point.loss
    base = evaluate(point.params)
    gen = torch.Generator().manual_seed(seed)
    draws = [point.draw(gen) for _ in range(samples)]
    squares = [p.pow(2) for p in point.params]

    def increase(sigma: float) -> float:
        if magnitude:
            scale = [torch.sqrt(sigma**2 * w2 + eps**2) for w2 in squares]
        else:
            scale = [torch.full_like(p, sigma) for p in point.params]
        return sum(evaluate(_axpy(point.params, scale, z)) for z in draws) / samples - base

    if magnitude and eps > 0 and increase(0.0) > bound:
        sigma, reached = 0.0, increase(0.0)
    else:
        sigma, reached = _largest_sigma(increase, bound, steps)
    value = math.inf if sigma == 0.0 else 1.0 / sigma**2
    name = "pac_bayes_mag_flatness" if magnitude else "pac_bayes_flatness"
    loss = base if criterion == "loss" else point.loss(point.params)
    return MeasureResult(name, value, loss, {"sigma": sigma, "increase": reached, "criterion": criterion, "bound": bound,
                                             "base": base, "samples": samples, "steps": steps, "eps": eps if magnitude else None})


def pac_bayes_mag_flatness(model: nn.Module, loss_fn: LossFn, data: Data, **kwargs) -> MeasureResult:
    """Magnitude-aware PAC-Bayes flatness 1 / alpha'^2 (Jiang et al. 2020): ``pac_bayes_flatness(magnitude=True)``."""
    return pac_bayes_flatness(model, loss_fn, data, magnitude=True, **kwargs)


