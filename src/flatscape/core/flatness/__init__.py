"""Scale-invariant flatness: the spectral norm of the Riemannian Hessian (thesis Ch. 3).

Geometry (thesis Sec. 3.3-3.3.1). The parameters are blocks: every weight tensor W_i
and every bias b_i of the network's Linear/Conv layers, ordered all weights first,
then all biases (the order of the authors' code), then every other trainable tensor
(batch- and layer-norm affine parameters, embeddings; see ``symmetry``). The metric at a point is

    g(eta, xi) = sum_i <eta_i, xi_i> / ||W_i||^2      (a bias block uses ||b_i||^2),

with G = diag(||W_i||^-2 I) its matrix. The Riemannian Hessian-vector product is
G^{-1} H xi (Sec. 3.4.1.2), H the Euclidean Hessian of the mean training loss over all
samples given. G^{-1} H is self-adjoint in g and has the spectrum of the symmetric

    A = S H S,  S = G^{-1/2} = diag(||W_i|| I),

which is what the solvers iterate on, in the coordinates u = S^{-1} xi (so that
||xi||_g = ||u||_2). Under T_lambda (``rescale``) the blocks scale by Lambda and
H -> Lambda^{-1} H Lambda^{-1}, S -> Lambda S, so A is the *same matrix* at every
point of an equivalence class, not only at minima. Start vectors are drawn in u, so
the same seed gives the same iterates, up to rounding, anywhere in the class.

A block of norm zero (e.g. VGG16's zero-initialised biases before training) lies
outside the quotient manifold (which needs W_i != 0); we take the limit of the
metric: its rows and columns of A vanish and it contributes nothing.

Signs. The value returned is the largest *algebraic* eigenvalue of A, which is the
spectral norm of Definition 3 (max over unit xi of g(xi, Hess xi)); at a minimum H is
PSD and it is also max |eigenvalue|. Lanczos returns exactly that. The power method
(Algorithm 1) converges to the eigenvalue of largest magnitude and returns its signed
Rayleigh quotient g(xi, Hess xi), as the authors' code did; where that eigenvalue is
negative (possible away from a minimum) the result is negative, and a warning is
logged because it is then not the Definition 3 value.

Modules: ``symmetry`` (blocks, metric, T_lambda and the batch-norm symmetries, with
the derivation for blocks beyond Linear/Conv), ``batches`` (the data), ``hessian``
(Euclidean HVPs of the mean loss), ``distributed`` (data-parallel HVPs over a
``torch.distributed`` group), ``operator`` (``CurvatureOperator``: A as a linear
operator, also for SciPy), ``solvers`` (Lanczos, Algorithm 1), ``measures``
(``spectral_norm``, ``trace`` and the one-line measures on a model), ``spectra``
(top-k eigenpairs, per-block spectral norms, spectral density), ``spread`` (the
measure over disjoint subsets of the data), ``results``, ``defaults``.
"""

from flatscape.core.flatness.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_MAX_HVP,
    DEFAULT_METHOD,
    DEFAULT_METRIC,
    DEFAULT_MIN_HVP,
    DEFAULT_REUSE_GRAPH,
    DEFAULT_SEED,
    DEFAULT_TOL,
    DEFAULT_TRACE_TOL,
    METHODS,
    METRICS,
    SOLVER_DTYPE,
)
from flatscape.core.flatness.generalization import (
    GENERALIZATION_MEASURES,
    MEASURE_FUNCTIONS,
    MeasureResult,
    adaptive_sharpness,
    adaptive_sharpness_avg,
    fisher_rao_norm,
    pac_bayes_flatness,
    pac_bayes_mag_flatness,
    relative_flatness,
    riemannian_trace,
)
from flatscape.core.flatness.hessian import LossHessian, evaluation_mode
from flatscape.core.flatness.measures import (
    auto_warm_start,
    fast_bfloat16,
    euclidean_hessian_trace,
    euclidean_spectral_norm,
    hvp,
    riemannian_hessian_trace,
    riemannian_hvp,
    riemannian_spectral_norm,
    sharpness_bound,
    spectral_norm,
    trace,
)
from flatscape.core.flatness.operator import CurvatureOperator
from flatscape.core.flatness.results import FlatnessResult, TraceResult, WarmStage
from flatscape.core.flatness.solvers import lanczos, power_iteration
from flatscape.core.flatness.spectra import (
    BlockValue,
    Eigenpairs,
    SpectralDensity,
    block_spectral_norms,
    layer_groups,
    spectral_density,
    top_eigenpairs,
)
from flatscape.core.flatness.spread import Spread, spread
from flatscape.core.flatness.symmetry import (
    layers,
    metric_inner,
    parameter_blocks,
    rescale,
    rescale_before_norm,
    rescale_norm_affine,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DTYPE",
    "DEFAULT_MAX_HVP",
    "DEFAULT_METHOD",
    "DEFAULT_METRIC",
    "DEFAULT_MIN_HVP",
    "DEFAULT_REUSE_GRAPH",
    "DEFAULT_SEED",
    "DEFAULT_TOL",
    "DEFAULT_TRACE_TOL",
    "METHODS",
    "METRICS",
    "SOLVER_DTYPE",
    "BlockValue",
    "CurvatureOperator",
    "Eigenpairs",
    "FlatnessResult",
    "LossHessian",
    "SpectralDensity",
    "Spread",
    "TraceResult",
    "WarmStage",
    "auto_warm_start",
    "fast_bfloat16",
    "block_spectral_norms",
    "euclidean_hessian_trace",
    "euclidean_spectral_norm",
    "evaluation_mode",
    "hvp",
    "lanczos",
    "layer_groups",
    "layers",
    "metric_inner",
    "parameter_blocks",
    "power_iteration",
    "rescale",
    "rescale_before_norm",
    "rescale_norm_affine",
    "riemannian_hessian_trace",
    "riemannian_hvp",
    "riemannian_spectral_norm",
    "sharpness_bound",
    "spectral_density",
    "spectral_norm",
    "spread",
    "top_eigenpairs",
    "trace",
    "GENERALIZATION_MEASURES",
    "MEASURE_FUNCTIONS",
    "MeasureResult",
    "adaptive_sharpness",
    "adaptive_sharpness_avg",
    "fisher_rao_norm",
    "pac_bayes_flatness",
    "pac_bayes_mag_flatness",
    "relative_flatness",
    "riemannian_trace",
]
