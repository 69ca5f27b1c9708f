"""The library's default settings, shared by every signature in this package.

The workflow passes its configured values explicitly (``ch3.minima.flatness``), so its
results do not depend on these.
"""

from __future__ import annotations

import torch

DEFAULT_METRIC = "riemannian"
DEFAULT_METHOD = "lanczos"
DEFAULT_TOL = 1e-6
"""Spectral norm: estimated relative error of the eigenvalue (Lanczos) or relative vector change (power)."""
DEFAULT_MAX_HVP = 1000
DEFAULT_TRACE_TOL = 1e-2
"""Trace: standard error relative to the running mean."""
DEFAULT_MIN_HVP = 10
DEFAULT_SEED = 0
DEFAULT_WARM_START = "auto"
"""``auto_warm_start``: warm stages where they pay (see ``AUTO_WARM_*``)."""
AUTO_WARM_FRACTION = 0.05
"""The automatic subsample stage's share of the samples."""
AUTO_WARM_MIN_SAMPLES = 50
"""The automatic subsample stage runs only when it holds at least this many samples (1,000
in all at 5 %): the smallest subsample measured, on AlexNet at 1,000 samples, paid 2.5x."""
AUTO_WARM_BF16_MIN_WORK = 10**8
"""The automatic bfloat16 stage runs only when one HVP's work, samples x parameters, is at
least this (below it an HVP takes milliseconds and the stage's fixed costs outweigh what
it saves; MNIST-FC on 1,000 samples is 1.5e9)."""
MIN_WARM_SAMPLES = 8
"""Fewest samples a warm stage may hold: fewer give a curvature unrelated to the full one."""
DEFAULT_BATCH_SIZE: int | None = None
"""None: one micro-batch per batch of ``data`` as given."""
DEFAULT_DTYPE: torch.dtype | None = None
"""None: the model's own parameter dtype."""
DEFAULT_REUSE_GRAPH: bool | None = None
"""None: keep the first-order graphs when they fit in half the free memory (``LossHessian``)."""

METRICS = ("riemannian", "euclidean")
METHODS = ("lanczos", "power")

SOLVER_DTYPE = torch.float64
"""The solvers' vectors: float32 dot products and norms over ~10^6 entries are off by
1e-6..1e-5 relative, which moved float32 Lanczos values by ~1e-4 on MNIST-FC; only the
HVP itself runs in the measure's dtype."""
