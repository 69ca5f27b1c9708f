"""What the measures return, and the warm-start passes they accept."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from flatscape.core.flatness.hessian import Batch, Data, as_batches


@dataclass(frozen=True)
class FlatnessResult:
    """Largest eigenvalue of the (Riemannian or Euclidean) Hessian and how it was found.

    ``eigenvector`` maps block names to tensors xi_i (total-manifold representation,
    ||xi||_g = 1 for the Riemannian metric, ||xi||_2 = 1 for the Euclidean one);
    ``history`` holds the estimate after each Hessian-vector product; ``residual`` is
    the final Ritz residual ||A y - theta y|| (Lanczos) or relative change of the
    vector (power); ``loss`` is the mean loss over all samples at the point.
    ``num_hvp`` and ``history`` count the final pass only (all samples, the measure's
    dtype); ``warm_hvp`` holds the HVP count of each ``WarmStage`` pass before it, 0 for
    a stage that was skipped because its subsample held fewer than ``MIN_WARM_SAMPLES``
    samples. ``error`` is the estimate of |lambda_max - value| the Lanczos stop used
    (Kato-Temple's r^2 / gap once the gap is resolved, else the residual; NaN for the
    power method); on trained networks it is typically 10-1000x above the true error
    (docs/benchmarks.md). ``trace`` holds, per step of the final Lanczos pass, (theta,
    r, gap to the next Ritz value, that value's residual), for studies of the stop.
    """

    value: float
    eigenvector: dict[str, torch.Tensor] = field(repr=False)
    num_hvp: int
    history: tuple[float, ...] = field(repr=False)
    converged: bool
    residual: float
    loss: float
    method: str
    metric: str
    warm_hvp: tuple[int, ...] = ()
    error: float = math.nan
    trace: tuple[tuple[float, float, float, float], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class TraceResult:
    """Hutchinson estimate of tr(A) with its standard error and running means."""

    value: float
    std_error: float
    num_hvp: int
    history: tuple[float, ...] = field(repr=False)
    converged: bool
    loss: float
    metric: str


@dataclass(frozen=True)
class WarmStage:
    """A cheap Lanczos pass whose top Ritz vector starts the next pass (``warm_start=``).

    The pass uses an evenly strided ``fraction`` of the samples (every round(1/fraction)-th
    sample of each batch) and/or HVPs in a cheaper ``dtype`` (e.g. ``torch.bfloat16``;
    None: the measure's dtype), and stops at the relative Ritz residual ``tol`` (the
    vector's accuracy, not the value's: ``lanczos(stop_on="residual")``) or after
    ``max_hvp`` products. It only chooses the start vector: the final pass still runs
    on all samples in the measure's dtype to its own ``tol``, so the value is that of a
    cold start to within ``tol``; what changes is how many full-cost HVPs it takes. It
    pays where the cheap operator's top eigenvector is close to the full one: a
    subsample that is not too small, or bf16 HVPs where bf16 matmuls are fast (CPUs
    with AVX512-BF16 or AMX, GPUs). The risk it adds: if the cheap operator ranks
    another eigenvector first (a tiny subsample), the final pass starts on that
    eigenvector and a loose final ``tol`` can accept it; compare with a cold start
    when choosing the passes for a new model.
    """

    fraction: float = 1.0
    dtype: torch.dtype | None = None
    tol: float = 1e-2
    max_hvp: int = 100

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"WarmStage.fraction must be in (0, 1], got {self.fraction}")
        if self.dtype is not None and not (isinstance(self.dtype, torch.dtype) and self.dtype.is_floating_point):
            raise ValueError(f"WarmStage.dtype must be a floating torch dtype or None, got {self.dtype!r}")
        if not self.tol > 0:
            raise ValueError(f"WarmStage.tol must be positive, got {self.tol}")
        if self.max_hvp < 1:
            raise ValueError(f"WarmStage.max_hvp must be >= 1, got {self.max_hvp}")

    def samples(self, data: Data) -> list[Batch]:
        """The pass's samples: every round(1/fraction)-th of each batch, from the first."""
        stride = max(1, round(1.0 / self.fraction))
        return [(x[::stride], y[::stride]) for x, y in as_batches(data)]
