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
"""``auto_warm_start``: a subsample warm stage where it pays (see ``AUTO_WARM_MIN_SAMPLES``)."""
AUTO_WARM_FRACTION = 0.05
"""The automatic warm stage's share of the samples (bench_peers: ``WarmStage(fraction=0.05)``)."""
AUTO_WARM_MIN_SAMPLES = 1000
"""The automatic warm stage runs only when its subsample holds at least this many samples
(20,000 samples at 5 %). Measured (benchmarks/bench_warm_rule.py, docs/results/peers/
warm_rule.json): on MNIST-FC with 250 to 10,000 samples (13- to 500-sample subsamples) the
warm stage never paid at tol 1e-4 (the full pass took as many or more HVPs than a cold
start, plus the stage's own), so every measured size stays cold; larger inputs are not
measured."""
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
