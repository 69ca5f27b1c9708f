"""Estimators acting on a ``CurvatureOperator``, and the one-line measures built on them.

``spectral_norm`` is the flatness measure of Definition 3 (largest eigenvalue of A =
S H S by Lanczos or Algorithm 1), ``trace`` a Hutchinson estimate of tr(A). Both draw
their random vectors in u coordinates on the CPU in float64, so a seed gives the same
draws on every device, and (for the Riemannian metric) the same iterates, up to
rounding, anywhere in a T_lambda equivalence class.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from flatscape.core.flatness.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_MAX_HVP,
    DEFAULT_METHOD,
    DEFAULT_MIN_HVP,
    DEFAULT_REUSE_GRAPH,
    DEFAULT_SEED,
    DEFAULT_TOL,
    DEFAULT_TRACE_TOL,
    DEFAULT_WARM_START,
    AUTO_WARM_BF16_MIN_WORK,
    AUTO_WARM_FRACTION,
    AUTO_WARM_MIN_SAMPLES,
    METHODS,
    MIN_WARM_SAMPLES,
    SOLVER_DTYPE,
)
from flatscape.core.flatness.hessian import Data, LossFn, LossHessian, as_batches
from flatscape.core.flatness.operator import CurvatureOperator
from flatscape.core.flatness.results import FlatnessResult, TraceResult, WarmStage
from flatscape.core.flatness.solvers import lanczos, power_iteration
from flatscape.core.flatness.symmetry import block_norms, parameter_blocks

log = logging.getLogger(__name__)


def _num_samples(batches) -> int:
    return sum(len(y) for _, y in batches)


@functools.lru_cache(maxsize=None)
def _cpu_has_bf16_instructions() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = set(fh.read().split())
    except OSError:  # not Linux: no way to tell cheaply, so no bf16 stage
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def fast_bfloat16(device: torch.device | str) -> bool:
    """Whether bfloat16 matrix products run natively (faster than float32) on ``device``:
    CUDA GPUs with bf16 arithmetic (compute capability 8.0 and up) and CPUs with the
    AVX512-BF16 or AMX-BF16 instructions (read from /proc/cpuinfo)."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # torch without the argument
            return torch.cuda.get_device_capability(device)[0] >= 8
    return device.type == "cpu" and _cpu_has_bf16_instructions()


def _has_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def auto_warm_start(data, *, model: nn.Module | None = None, device: torch.device | str | None = None,
                    dtype: torch.dtype | None = None) -> tuple[WarmStage, ...]:
    """The warm stages ``warm_start="auto"`` runs before the final pass on ``data``.

    - A Lanczos pass on all samples in bfloat16, where it was measured to pay: on a CPU
      with fast bf16 products (``fast_bfloat16``), for a ``model`` without convolutions,
      in a measure whose dtype is wider than bf16, when one HVP's work (samples x
      parameters) is at least ``AUTO_WARM_BF16_MIN_WORK``. On MNIST-FC it reached a true
      error of 1e-4 1.85-2.43x sooner than a cold start (10,000-50,000 samples); on the
      convolutional AlexNet and ResNet-18 it paid 0.96-1.17x and 0.87-1.05x (bf16 convolutions
      gain less on such a CPU), and on GPUs it is not measured yet.
    - Otherwise a Lanczos pass on a ``AUTO_WARM_FRACTION`` (5 %) subsample, when that
      subsample holds at least ``AUTO_WARM_MIN_SAMPLES`` samples: 1.08-2.5x on AlexNet
      and ResNet-18 (1,000-2,000 samples), 0.89-1.29x on MNIST-FC.

    Without ``model`` and ``device`` only the subsample stage is considered. Read off
    benchmarks/bench_warm_rule.py (docs/results/peers/warm_rule.md), which times each
    strategy to true relative errors of 1e-4 and 1e-6. A stage only chooses the next
    pass's start vector: the final pass still runs on all samples in the measure's dtype
    to the requested tol.
    """
    if model is not None and device is not None and torch.device(device).type == "cpu":
        narrower = dtype is None or torch.finfo(dtype).bits > 16
        work = _num_samples(as_batches(data)) * sum(p.numel() for p in model.parameters() if p.requires_grad)
        if narrower and work >= AUTO_WARM_BF16_MIN_WORK and not _has_convolutions(model) and fast_bfloat16(device):
            return (WarmStage(dtype=torch.bfloat16),)
    sub = WarmStage(fraction=AUTO_WARM_FRACTION)
    return (sub,) if _num_samples(sub.samples(data)) >= AUTO_WARM_MIN_SAMPLES else ()


def _check_warm_start(warm_start, op: CurvatureOperator, method: str) -> tuple[WarmStage | None, ...]:
    """The stages to run: ``"auto"`` resolved on ``data``; a stage whose subsample holds
    fewer than ``MIN_WARM_SAMPLES`` samples becomes None (skipped, reported as 0 HVPs).

    ``"auto"`` leaves the power method cold: its iteration count is Algorithm 1's, which
    the thesis's experiments compare as such."""
    if isinstance(warm_start, str):
        if warm_start != "auto":
            raise ValueError(f"warm_start must be 'auto', a sequence of WarmStage or () for a cold start, got {warm_start!r}")
        if method != "lanczos":
            return ()
        return auto_warm_start(op.data, model=op.hessian.model, device=op.device, dtype=op.dtype)
    if isinstance(warm_start, WarmStage):
        raise ValueError(f"warm_start must be a sequence of WarmStage, got a single one: pass ({warm_start!r},)")
    try:
        stages = tuple(warm_start)
    except TypeError:
        raise ValueError(
            f"warm_start must be 'auto', a sequence of WarmStage or () for a cold start, got {warm_start!r}"
        ) from None
    bad = [w for w in stages if not isinstance(w, WarmStage)]
    if bad:
        raise ValueError(f"warm_start must be 'auto', a sequence of WarmStage or () for a cold start, got {bad[0]!r} in it")
    data = op.data
    total = _num_samples(data)
    kept_stages: list[WarmStage | None] = []
    for i, stage in enumerate(stages):
        kept = _num_samples(stage.samples(data))
        if kept < min(MIN_WARM_SAMPLES, total):
            log.warning(
                "warm_start[%d] skipped: fraction=%g keeps %d of %d samples, fewer than MIN_WARM_SAMPLES=%d "
                "(a smaller subsample's curvature says nothing about the full one)",
                i, stage.fraction, kept, total, MIN_WARM_SAMPLES,
            )  # fmt: skip
            kept_stages.append(None)
        else:
            kept_stages.append(stage)
    return tuple(kept_stages)


def _start_vector(op: CurvatureOperator, seed: int) -> torch.Tensor:
    """A seeded Gaussian start in u coordinates, drawn on the CPU in float64 (device independent)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(op.shape[0], generator=gen, dtype=SOLVER_DTYPE).to(op.device)
    if op.scales is not None:
        u = torch.where(op.scales == 0, torch.zeros_like(u), u)  # zero-norm blocks are outside the manifold
    return u / u.norm()


def spectral_norm(
    op: CurvatureOperator,
    *,
    method: str = DEFAULT_METHOD,
    tol: float = DEFAULT_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    seed: int = DEFAULT_SEED,
    warm_start: Sequence[WarmStage] | str = DEFAULT_WARM_START,
) -> FlatnessResult:
    """lambda_max(A) = max_{||u|| = 1} u^T S H S u: for the Riemannian metric the spectral norm
    ||Hess f(W)||_{2,g} = max_{||xi||_g = 1} g(xi, G^{-1} H xi) of thesis Definition 3.

    ``method="lanczos"`` stops once the estimated error of the eigenvalue is below
    ``tol`` relative to it (``tol=1e-4``: four significant digits; the estimate is
    Kato-Temple's r^2 / gap once the top Ritz value is separated, the residual r before);
    ``method="power"`` is Algorithm 1 and stops on the relative change of the vector
    (see ``lanczos`` and ``power_iteration``); either stops after ``max_hvp`` products.
    ``warm_start`` is ``"auto"`` (default: ``auto_warm_start``: a bfloat16 pass on CPUs
    with fast bf16 for networks without convolutions, else a 5 % subsample pass when it
    holds at least ``AUTO_WARM_MIN_SAMPLES`` samples, else a cold start;
    always cold for ``method="power"``),
    ``()`` (a cold, seeded random start) or a sequence of ``WarmStage``
    passes (Lanczos on ``op.variant`` operators: subsampled and/or lower precision)
    that choose the final pass's start vector, e.g.
    ``(WarmStage(fraction=0.05), WarmStage(dtype=torch.bfloat16))``; the value is that
    of a cold start within ``tol``. A stage keeping fewer than ``MIN_WARM_SAMPLES``
    samples is skipped with a warning and counted as 0 in ``warm_hvp``; anything else
    than these three forms is refused with a ValueError naming ``warm_start``. Each pass's graphs
    are freed before the next is built, and a fresh ``op`` builds its own only after
    the last pass, so one pass is in memory at a time.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not 0.0 < tol < 1.0:
        raise ValueError(f"tol must be in (0, 1) (a relative error), got {tol}")
    if max_hvp < 1:
        raise ValueError(f"max_hvp must be >= 1, got {max_hvp}")
    stages = _check_warm_start(warm_start, op, method)
    start, warm_hvp = None, []
    for stage in stages:
        if stage is None:  # too few samples (see _check_warm_start): reported as a 0-HVP stage
            warm_hvp.append(0)
            continue
        cheap = op.variant(data=stage.samples(op.data), dtype=stage.dtype)
        if start is None:
            start = _start_vector(cheap, seed)
        warm = lanczos(cheap.matvec, start, tol=stage.tol, max_iter=stage.max_hvp, stop_on="residual")
        start = warm.vector
        warm_hvp.append(warm.num_hvp)
        log.debug("warm stage %s: %.6g after %d HVPs", stage, warm.value, warm.num_hvp)
        del cheap, warm
    if start is None:
        start = _start_vector(op, seed)
    solver = lanczos if method == "lanczos" else power_iteration
    sol = solver(op.matvec, start.to(op.device), tol=tol, max_iter=max_hvp)
    if not sol.converged:
        log.warning(
            "%s %s did not converge in %d HVPs (residual %.3g, tol %.3g)", op.metric, method, sol.num_hvp, sol.residual, tol
        )
    if method == "power" and sol.value < 0:
        log.warning(
            "power method converged to a negative dominant eigenvalue (%.4g); the largest algebraic "
            "eigenvalue (Definition 3) is smaller in magnitude: use method='lanczos'",
            sol.value,
        )
    log.debug("%s/%s: value %.10g after %d HVPs (reuse_graph=%s)", op.metric, method, sol.value, sol.num_hvp, op.reuse_graph)
    return FlatnessResult(
        value=sol.value,
        eigenvector=op.tangent(sol.vector),
        num_hvp=sol.num_hvp,
        history=sol.history,
        converged=sol.converged,
        residual=sol.residual,
        loss=op.loss,
        method=method,
        metric=op.metric,
        warm_hvp=tuple(warm_hvp),
        error=sol.error,
        trace=sol.trace,
    )


def trace(
    op: CurvatureOperator,
    *,
    tol: float = DEFAULT_TRACE_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    min_hvp: int = DEFAULT_MIN_HVP,
    seed: int = DEFAULT_SEED,
) -> TraceResult:
    """Hutchinson estimate of tr(A) = mean of z^T A z over Rademacher probes z.

    For the Riemannian metric tr(A) = tr(G^{-1} H) = sum_i ||W_i||^2 tr(H_ii), which
    Example 3.3.5 shows is invariant under T_lambda (beyond the thesis's measures).
    Stops once at least ``min_hvp`` probes give a standard error below
    ``tol * |mean|``, or after ``max_hvp``.
    """
    if max_hvp < 1 or min_hvp < 2:
        raise ValueError("need max_hvp >= 1 and min_hvp >= 2")
    gen = torch.Generator().manual_seed(seed)
    samples: list[float] = []
    history: list[float] = []
    std_error, converged = math.inf, False
    for k in range(max_hvp):
        z = (torch.randint(0, 2, (op.shape[0],), generator=gen, dtype=torch.int8).to(SOLVER_DTYPE) * 2 - 1).to(op.device)
        samples.append(float(torch.dot(z, op.matvec(z))))
        mean = float(np.mean(samples))
        history.append(mean)
        if k + 1 >= 2:
            std_error = float(np.std(samples, ddof=1) / math.sqrt(k + 1))
        if k + 1 >= min_hvp and std_error <= tol * abs(mean):
            converged = True
            break
    return TraceResult(float(np.mean(samples)), std_error, len(samples), tuple(history), converged, op.loss, op.metric)


def riemannian_spectral_norm(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    method: str = DEFAULT_METHOD,
    tol: float = DEFAULT_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    seed: int = DEFAULT_SEED,
    reuse_graph: bool | None = DEFAULT_REUSE_GRAPH,
    warm_start: Sequence[WarmStage] | str = DEFAULT_WARM_START,
) -> FlatnessResult:
    """Spectral norm of the Riemannian Hessian, ||Hess f(W)||_{2,g} (thesis Definition 3).

    value = lambda_max(G^{-1/2} H G^{-1/2}), H the Hessian of the mean of ``loss_fn``
    over all samples in ``data`` (an ``(inputs, targets)`` pair or an iterable of
    pairs), accumulated over micro-batches of ``batch_size`` so the value does not
    depend on it. ``dtype`` (e.g. ``torch.float64``) evaluates a converted copy of the
    parameters; the model is evaluated in eval mode and left exactly as it was. The
    arguments are those of ``CurvatureOperator`` and ``spectral_norm``.
    """
    op = CurvatureOperator(model, loss_fn, data, metric="riemannian", batch_size=batch_size, dtype=dtype, reuse_graph=reuse_graph)
    return spectral_norm(op, method=method, tol=tol, max_hvp=max_hvp, seed=seed, warm_start=warm_start)


def euclidean_spectral_norm(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    method: str = DEFAULT_METHOD,
    tol: float = DEFAULT_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    seed: int = DEFAULT_SEED,
    reuse_graph: bool | None = DEFAULT_REUSE_GRAPH,
    warm_start: Sequence[WarmStage] | str = DEFAULT_WARM_START,
) -> FlatnessResult:
    """Largest eigenvalue of the Euclidean Hessian H (the measure Dinh et al. 2017 can game).

    Same arguments and solvers as ``riemannian_spectral_norm`` with G = I; not invariant
    under ``rescale``.
    """
    op = CurvatureOperator(model, loss_fn, data, metric="euclidean", batch_size=batch_size, dtype=dtype, reuse_graph=reuse_graph)
    return spectral_norm(op, method=method, tol=tol, max_hvp=max_hvp, seed=seed, warm_start=warm_start)


def riemannian_hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    tol: float = DEFAULT_TRACE_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    min_hvp: int = DEFAULT_MIN_HVP,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    seed: int = DEFAULT_SEED,
    reuse_graph: bool | None = DEFAULT_REUSE_GRAPH,
) -> TraceResult:
    """Hutchinson estimate of tr(Hess f) = tr(G^{-1} H) = sum_i ||W_i||^2 tr(H_ii) (beyond the thesis).

    Each probe is a Rademacher z in u coordinates, z^T S H S z, so the same seed gives
    the same estimate anywhere in an equivalence class; see ``trace``.
    """
    op = CurvatureOperator(model, loss_fn, data, metric="riemannian", batch_size=batch_size, dtype=dtype, reuse_graph=reuse_graph)
    return trace(op, tol=tol, max_hvp=max_hvp, min_hvp=min_hvp, seed=seed)


def euclidean_hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    tol: float = DEFAULT_TRACE_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    min_hvp: int = DEFAULT_MIN_HVP,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    seed: int = DEFAULT_SEED,
    reuse_graph: bool | None = DEFAULT_REUSE_GRAPH,
) -> TraceResult:
    """Hutchinson estimate of tr(H), for contrast with ``riemannian_hessian_trace``."""
    op = CurvatureOperator(model, loss_fn, data, metric="euclidean", batch_size=batch_size, dtype=dtype, reuse_graph=reuse_graph)
    return trace(op, tol=tol, max_hvp=max_hvp, min_hvp=min_hvp, seed=seed)


def hvp(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    vector: dict[str, torch.Tensor] | Sequence[torch.Tensor],
    *,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
) -> dict[str, torch.Tensor]:
    """Euclidean Hessian-vector product H v of the mean loss, blocks keyed by parameter name."""
    hessian = LossHessian(model, loss_fn, data, batch_size=batch_size, dtype=dtype, reuse_graph=False)
    blocks = [vector[n] for n in hessian.names] if isinstance(vector, dict) else list(vector)
    return dict(zip(hessian.names, (h.detach() for h in hessian.hvp(blocks))))


def riemannian_hvp(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    vector: dict[str, torch.Tensor] | Sequence[torch.Tensor],
    *,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
) -> dict[str, torch.Tensor]:
    """Riemannian Hessian-vector product Hess f(W)[xi] = G^{-1} H xi (thesis Sec. 3.4.1.2).

    Steps 1-4 of the thesis: the metric inner product g(G^{-1} EGrad f, xi) equals
    <EGrad f, xi> with the norms held at W, so its Euclidean gradient is H xi, and
    premultiplying by G^{-1} = diag(||W_i||^2 I) gives the Riemannian HVP.
    """
    euclid = hvp(model, loss_fn, data, vector, batch_size=batch_size, dtype=dtype)
    blocks = parameter_blocks(model)
    norms = dict(zip((name for name, _ in blocks), block_norms([p for _, p in blocks])))
    return {name: norms[name] ** 2 * h for name, h in euclid.items()}


def sharpness_bound(value: float, train_loss: float, eps: float | None = None) -> float:
    """The normalised number the authors reported as "spectral norm" (Table 3.7).

    From the flatness measure of Sec. 3.4, (max_{B(eps)} f - f) / (1 + f) ~
    eps^2 lambda / (2 + 2 L) at a minimum. The authors' scripts printed
    eps^2 * lambda / (2 + 2 L) with eps = 1e-3 for MNIST-FC, and lambda / (2 + 2 L)
    (``eps=None``) for LeNet and the CIFAR-10 AlexNet/VGG16. Tables 3.2/3.3, Figure 3.1
    and the Euclidean-vs-Riemannian table report raw lambda_max, never this bound.
    """
    factor = 1.0 if eps is None else float(eps) ** 2
    return factor * float(value) / (2.0 + 2.0 * float(train_loss))
