"""Scale-invariant flatness: the spectral norm of the Riemannian Hessian (thesis Ch. 3).

Geometry (thesis Sec. 3.3-3.3.1). The parameters are blocks: every weight tensor W_i
and every bias b_i of the network's Linear/Conv layers, ordered all weights first,
then all biases (the order of the authors' code). The metric at a point is

    g(eta, xi) = sum_i <eta_i, xi_i> / ||W_i||^2      (a bias block uses ||b_i||^2),

with G = diag(||W_i||^-2 I) its matrix. The Riemannian Hessian-vector product is
G^{-1} H xi (Sec. 3.4.1.2), H the Euclidean Hessian of the mean training loss over all
samples given. G^{-1} H is self-adjoint in g and has the spectrum of the symmetric

    A = S H S,  S = G^{-1/2} = diag(||W_i|| I),

which is what the solvers below iterate on, in the coordinates u = S^{-1} xi (so that
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
"""

from __future__ import annotations

import copy
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import nn
from torch.func import functional_call

log = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
Data = Batch | Iterable[Batch]

_METHODS = ("lanczos", "power")


# --------------------------------------------------------------------------- blocks


def layers(model: nn.Module) -> list[nn.Module]:
    """The network's Linear/Conv layers in registration (= forward, for our chains) order."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]


def parameter_blocks(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every weight, then every bias, of the Linear/Conv layers.

    The metric of Sec. 3.3 is defined for these blocks only, so a model with any other
    trainable parameter (batch norm, embeddings) is rejected rather than silently
    treated as constant.
    """
    owner = {id(p): name for name, p in model.named_parameters()}
    weights, biases, covered = [], [], set()
    for layer in layers(model):
        for kind, bucket in (("weight", weights), ("bias", biases)):
            p = getattr(layer, kind, None)
            if p is not None and id(p) not in covered:
                covered.add(id(p))
                bucket.append((owner[id(p)], p))
    others = [name for name, p in model.named_parameters() if id(p) not in covered and p.requires_grad]
    if others:
        raise ValueError(
            f"parameters outside Linear/Conv layers have no metric in thesis Sec. 3.3: {others}; "
            "freeze them (requires_grad=False) or remove them"
        )
    return weights + biases


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FlatnessResult:
    """Largest eigenvalue of the (Riemannian or Euclidean) Hessian and how it was found.

    ``eigenvector`` maps block names to tensors xi_i (total-manifold representation,
    ||xi||_g = 1 for the Riemannian metric, ||xi||_2 = 1 for the Euclidean one);
    ``history`` holds the estimate after each Hessian-vector product; ``residual`` is
    the final Ritz residual ||A y - theta y|| (Lanczos) or relative change of the
    vector (power); ``loss`` is the mean loss over all samples at the point.
    ``num_hvp`` and ``history`` count the final pass only (all samples, the measure's
    dtype); ``warm_hvp`` holds the HVP count of each ``WarmStage`` pass before it.
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


@dataclass(frozen=True)
class WarmStage:
    """A cheap Lanczos pass whose top Ritz vector starts the next pass (``warm_start=``).

    The pass uses an evenly strided ``fraction`` of the samples (every round(1/fraction)-th
    sample of each batch) and/or HVPs in a cheaper ``dtype`` (e.g. ``torch.bfloat16``;
    None: the measure's dtype), and stops at the relative Ritz residual ``tol`` or after
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
        return [(x[::stride], y[::stride]) for x, y in _as_batches(data)]


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


# --------------------------------------------------------------------------- the loss Hessian


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (dropout off) and restore every module's flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def _as_batches(data: Data) -> list[Batch]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return [(data[0], data[1])]
    batches = [tuple(b) for b in data]
    if not batches or any(len(b) != 2 for b in batches):
        raise ValueError("data must be an (inputs, targets) pair of tensors or a non-empty iterable of such pairs")
    return batches


def _micro_batches(batches: list[Batch], batch_size: int | None) -> list[Batch]:
    if batch_size is None:
        return batches
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    return [(x[i : i + batch_size], y[i : i + batch_size]) for x, y in batches for i in range(0, len(x), batch_size)]


def _memory_budget(device: torch.device) -> int:
    """Bytes we allow the retained gradient graphs to take: half the free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 4 * 2**30


@contextmanager
def _count_saved_bytes(counter: list[int]) -> Iterator[None]:
    """Add to ``counter[0]`` the bytes autograd saves for backward (each storage once)."""
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            counter[0] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


class LossHessian:
    """Euclidean Hessian-vector products of the mean loss over all samples given.

    The loss is sum_b (n_b / N) loss_fn(model(x_b), y_b) over micro-batches b, so
    it equals the full-batch mean exactly whatever ``batch_size`` is (``loss_fn`` must
    return the mean over its batch). Two paths (thesis Sec. 3.4.1.2 via autograd):

    - reuse: build each micro-batch's first-order graph once (``create_graph``) and
      take every HVP as grad(g . v) with ``retain_graph`` (about 2 gradient passes per
      HVP; memory: all graphs stay alive);
    - recompute: rebuild the graph per micro-batch in every HVP (about 3 gradient
      passes; memory: one micro-batch).

    ``reuse_graph=None`` picks reuse when there is a single micro-batch (its graph is
    needed anyway) or when the first micro-batch's saved tensors times the number of
    micro-batches fit in half the free memory.

    The caller's model is never modified: parameters are detached copies (converted to
    ``dtype`` when given) swapped in with ``torch.func.functional_call``; use inside
    ``evaluation_mode(model)``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Data,
        *,
        batch_size: int | None = None,
        dtype: torch.dtype | None = None,
        reuse_graph: bool | None = None,
    ) -> None:
        blocks = parameter_blocks(model)
        if not blocks:
            raise ValueError("the model has no Linear/Conv parameters")
        reference = blocks[0][1]
        self.device = reference.device
        self.dtype = dtype or reference.dtype
        self.names = [name for name, _ in blocks]
        self.params = [p.detach().to(self.dtype).clone().requires_grad_(True) for _, p in blocks]
        # Buffers follow the requested dtype too (floating ones only), so float64 is float64 end to end.
        self.buffers = {
            name: (b.to(self.dtype) if b.is_floating_point() else b) for name, b in model.named_buffers()
        }
        self.model = model
        self.loss_fn = loss_fn
        self.batches = _micro_batches(_as_batches(data), batch_size)
        self.num_samples = sum(len(x) for x, _ in self.batches)
        if self.num_samples == 0:
            raise ValueError("data holds no samples")
        self._graphs: list[tuple[torch.Tensor, ...]] | None = None
        self.loss = self._build(reuse_graph)

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype if x.is_floating_point() else None)
        y = y.to(self.device, self.dtype if y.is_floating_point() else None)  # regression targets follow dtype
        state = dict(zip(self.names, self.params)) | self.buffers
        out = functional_call(self.model, state, (x,))
        return self.loss_fn(out, y) * (len(x) / self.num_samples)

    def _gradient_graph(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        loss = self._batch_loss(x, y)
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        return loss.detach(), tuple(torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads))

    def _build(self, reuse_graph: bool | None) -> float:
        counter = [0]
        with _count_saved_bytes(counter):
            loss0, graph0 = self._gradient_graph(*self.batches[0])
        if reuse_graph is None:
            estimate = counter[0] * len(self.batches)
            reuse_graph = len(self.batches) == 1 or estimate <= _memory_budget(self.device)
            log.debug("graph memory estimate %.1f MB -> reuse=%s", estimate / 2**20, reuse_graph)
        self.reuse_graph = bool(reuse_graph)
        total = loss0.clone()
        graphs = [graph0] if self.reuse_graph else None
        for x, y in self.batches[1:]:
            if self.reuse_graph:
                loss_b, graph = self._gradient_graph(x, y)
                graphs.append(graph)
            else:
                with torch.no_grad():
                    loss_b = self._batch_loss(x, y)
            total += loss_b
        self._graphs = graphs
        return float(total)

    @staticmethod
    def _second_grad(graph: tuple[torch.Tensor, ...], params, vector, retain: bool) -> list[torch.Tensor]:
        live = [(g, v) for g, v in zip(graph, vector) if g.requires_grad]
        if not live:  # loss linear in the parameters: zero Hessian
            return [torch.zeros_like(p) for p in params]
        out = torch.autograd.grad(
            [g for g, _ in live], params, grad_outputs=[v for _, v in live], retain_graph=retain, allow_unused=True
        )
        return [torch.zeros_like(p) if h is None else h for p, h in zip(params, out)]

    def hvp(self, vector: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """H v for ``vector`` given as blocks (same order and shapes as the parameters)."""
        vector = [v.to(self.device, self.dtype) for v in vector]
        total = [torch.zeros_like(p) for p in self.params]
        if self.reuse_graph:
            parts = (self._second_grad(g, self.params, vector, True) for g in self._graphs)
        else:
            parts = (self._second_grad(self._gradient_graph(x, y)[1], self.params, vector, False) for x, y in self.batches)
        for part in parts:
            for acc, h in zip(total, part):
                acc.add_(h)
        return total

    def gradient(self) -> list[torch.Tensor]:
        """Euclidean gradient of the mean loss (first-order pass, no graph kept)."""
        total = [torch.zeros_like(p) for p in self.params]
        for x, y in self.batches:
            grads = torch.autograd.grad(self._batch_loss(x, y), self.params, allow_unused=True)
            for acc, g in zip(total, grads):
                if g is not None:
                    acc.add_(g)
        return total

    def block_norms(self) -> list[float]:
        # float64: a float32 norm of a million entries is off by ~1e-5 relative, which
        # would break the exact rescaling S -> Lambda S between equivalent points.
        return [float(p.detach().to(torch.float64).norm()) for p in self.params]

    def flatten(self, blocks: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([b.reshape(-1) for b in blocks])

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        sizes = [p.numel() for p in self.params]
        return [chunk.view_as(p) for chunk, p in zip(torch.split(flat, sizes), self.params)]


_SOLVER_DTYPE = torch.float64


def _scale_vector(hessian: LossHessian, metric: str) -> torch.Tensor | None:
    """S = G^{-1/2} as a flat float64 vector (||W_i|| on block i), or None for the Euclidean metric."""
    if metric == "euclidean":
        return None
    norms = hessian.block_norms()
    return torch.cat(
        [torch.full((p.numel(),), n, device=hessian.device, dtype=_SOLVER_DTYPE) for p, n in zip(hessian.params, norms)]
    )


def _operator(hessian: LossHessian, scale: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """u -> S H S u on flat float64 vectors (S = I for the Euclidean metric).

    The solvers keep their vectors in float64 whatever the model's dtype: float32
    dot products and norms over ~10^6 entries are off by 1e-6..1e-5 relative, which
    moved float32 Lanczos values by ~1e-4 on MNIST-FC; only the HVP runs in ``dtype``.
    """

    def apply(u: torch.Tensor) -> torch.Tensor:
        v = u if scale is None else scale * u
        hv = hessian.flatten(hessian.hvp(hessian.unflatten(v.to(hessian.dtype)))).to(_SOLVER_DTYPE)
        return hv if scale is None else scale * hv

    return apply


def _start_vector(n: int, scale: torch.Tensor | None, seed: int, device: torch.device) -> torch.Tensor:
    """A seeded Gaussian start in u coordinates, drawn on the CPU in float64 (device independent)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(n, generator=gen, dtype=_SOLVER_DTYPE).to(device)
    if scale is not None:
        u = torch.where(scale == 0, torch.zeros_like(u), u)  # zero-norm blocks are outside the manifold
    return u / u.norm()


# --------------------------------------------------------------------------- solvers


@dataclass(frozen=True)
class _Solution:
    value: float
    vector: torch.Tensor
    num_hvp: int
    history: tuple[float, ...]
    converged: bool
    residual: float


def lanczos(apply: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, *, tol: float, max_iter: int) -> _Solution:
    """Largest algebraic eigenvalue of a symmetric operator by Lanczos with full reorthogonalisation.

    Stops when the Ritz residual ||A y - theta y|| = beta_k |s_k| of the top Ritz pair
    falls below ``tol * |theta|``, on an invariant subspace (beta ~ 0: exact), or after
    ``max_iter`` products. A residual r puts an eigenvalue within r of theta (within
    r^2 / gap once the pair is isolated); from a random start that eigenvalue is
    lambda_max with probability one. The residual cannot fall much below the HVP's own
    rounding (about 1e-6 relative for float32 HVPs), so smaller ``tol`` needs float64.
    The basis is kept (k vectors of the operator's size, in ``start``'s dtype) and
    reorthogonalised twice per step (classical Gram-Schmidt, "twice is enough").
    """
    n = start.numel()
    steps = min(max_iter, n)
    basis = torch.empty((min(steps, 32), n), device=start.device, dtype=start.dtype)
    alphas: list[float] = []
    betas: list[float] = []
    history: list[float] = []
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
            theta, s = alpha, np.ones(1)
        else:
            vals, vecs = eigh_tridiagonal(np.array(alphas), np.array(betas), select="i", select_range=(k, k))
            theta, s = float(vals[0]), vecs[:, 0]
        residual = beta * abs(float(s[-1]))
        history.append(theta)
        scale_est = max(abs(h) for h in history)
        if residual <= tol * abs(theta) or beta <= eps * max(scale_est, 1e-300) or k + 1 == n:
            converged = True
            break
        betas.append(beta)
        q = w / beta
    k_used = len(alphas)
    coeffs = torch.as_tensor(s, device=start.device, dtype=start.dtype)
    vector = basis[:k_used].T @ coeffs
    return _Solution(theta, vector / vector.norm(), k_used, tuple(history), converged, residual)


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


# --------------------------------------------------------------------------- public measures


def _check_warm_start(warm_start) -> tuple[WarmStage, ...]:
    stages = tuple(warm_start)
    bad = [w for w in stages if not isinstance(w, WarmStage)]
    if bad:
        raise ValueError(f"warm_start must be a sequence of WarmStage, got {bad[0]!r}")
    return stages


def _spectral_norm(model, loss_fn, data, *, metric, method, tol, max_hvp, batch_size, dtype, seed, reuse_graph, warm_start):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if max_hvp < 1:
        raise ValueError(f"max_hvp must be >= 1, got {max_hvp}")
    stages = _check_warm_start(warm_start)
    data = _as_batches(data)  # a generator would be spent by the first pass
    with evaluation_mode(model):
        start, warm_hvp = None, []
        for stage in stages:
            # Each pass's graphs are released before the next is built: one pass in memory at a time.
            cheap = LossHessian(
                model, loss_fn, stage.samples(data), batch_size=batch_size, dtype=stage.dtype or dtype, reuse_graph=reuse_graph
            )
            cheap_scale = _scale_vector(cheap, metric)
            if start is None:
                start = _start_vector(sum(p.numel() for p in cheap.params), cheap_scale, seed, cheap.device)
            warm = lanczos(_operator(cheap, cheap_scale), start, tol=stage.tol, max_iter=stage.max_hvp)
            start = warm.vector
            warm_hvp.append(warm.num_hvp)
            log.debug("warm stage %s: %.6g after %d HVPs", stage, warm.value, warm.num_hvp)
            del cheap, warm
        hessian = LossHessian(model, loss_fn, data, batch_size=batch_size, dtype=dtype, reuse_graph=reuse_graph)
        scale = _scale_vector(hessian, metric)
        if start is None:
            start = _start_vector(sum(p.numel() for p in hessian.params), scale, seed, hessian.device)
        solver = lanczos if method == "lanczos" else power_iteration
        sol = solver(_operator(hessian, scale), start.to(hessian.device), tol=tol, max_iter=max_hvp)
    xi = (sol.vector if scale is None else scale * sol.vector).to(hessian.dtype)
    eigenvector = {name: b.detach() for name, b in zip(hessian.names, hessian.unflatten(xi))}
    if not sol.converged:
        log.warning("%s %s did not converge in %d HVPs (residual %.3g, tol %.3g)", metric, method, sol.num_hvp, sol.residual, tol)
    if method == "power" and sol.value < 0:
        log.warning(
            "power method converged to a negative dominant eigenvalue (%.4g); the largest algebraic "
            "eigenvalue (Definition 3) is smaller in magnitude: use method='lanczos'",
            sol.value,
        )
    log.debug("%s/%s: value %.10g after %d HVPs (reuse_graph=%s)", metric, method, sol.value, sol.num_hvp, hessian.reuse_graph)
    return FlatnessResult(
        value=sol.value,
        eigenvector=eigenvector,
        num_hvp=sol.num_hvp,
        history=sol.history,
        converged=sol.converged,
        residual=sol.residual,
        loss=hessian.loss,
        method=method,
        metric=metric,
        warm_hvp=tuple(warm_hvp),
    )


def riemannian_spectral_norm(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    method: str = "lanczos",
    tol: float = 1e-6,
    max_hvp: int = 1000,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    reuse_graph: bool | None = None,
    warm_start: Sequence[WarmStage] = (),
) -> FlatnessResult:
    """Spectral norm of the Riemannian Hessian, ||Hess f(W)||_{2,g} (thesis Definition 3).

    value = lambda_max(G^{-1/2} H G^{-1/2}) = max_{||xi||_g = 1} g(xi, G^{-1} H xi), with
    H the Hessian of the mean of ``loss_fn`` over all samples in ``data`` (an
    ``(inputs, targets)`` pair or an iterable of pairs), accumulated over micro-batches
    of ``batch_size`` so the value does not depend on it. ``method="lanczos"`` (default)
    stops on the Ritz residual relative to the estimate; ``method="power"`` is
    Algorithm 1 and stops on the relative change of the vector (see ``lanczos`` and
    ``power_iteration`` for what ``tol`` means for each). ``dtype`` (e.g.
    ``torch.float64``) evaluates a converted copy of the parameters; the model is
    evaluated in eval mode and left exactly as it was. ``reuse_graph`` chooses the HVP
    path (see ``LossHessian``). ``warm_start`` is a sequence of ``WarmStage`` passes
    (subsampled and/or lower-precision Lanczos) that choose the final pass's start
    vector; e.g. ``(WarmStage(fraction=0.05), WarmStage(dtype=torch.bfloat16))``.
    """
    return _spectral_norm(
        model, loss_fn, data, metric="riemannian", method=method, tol=tol, max_hvp=max_hvp,
        batch_size=batch_size, dtype=dtype, seed=seed, reuse_graph=reuse_graph, warm_start=warm_start,
    )  # fmt: skip


def euclidean_spectral_norm(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    method: str = "lanczos",
    tol: float = 1e-6,
    max_hvp: int = 1000,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    reuse_graph: bool | None = None,
    warm_start: Sequence[WarmStage] = (),
) -> FlatnessResult:
    """Largest eigenvalue of the Euclidean Hessian H (the measure Dinh et al. 2017 can game).

    Same arguments and solvers as ``riemannian_spectral_norm`` with G = I; not invariant
    under ``rescale``.
    """
    return _spectral_norm(
        model, loss_fn, data, metric="euclidean", method=method, tol=tol, max_hvp=max_hvp,
        batch_size=batch_size, dtype=dtype, seed=seed, reuse_graph=reuse_graph, warm_start=warm_start,
    )  # fmt: skip


def _hessian_trace(model, loss_fn, data, *, metric, tol, max_hvp, min_hvp, batch_size, dtype, seed, reuse_graph) -> TraceResult:
    if max_hvp < 1 or min_hvp < 2:
        raise ValueError("need max_hvp >= 1 and min_hvp >= 2")
    with evaluation_mode(model):
        hessian = LossHessian(model, loss_fn, data, batch_size=batch_size, dtype=dtype, reuse_graph=reuse_graph)
        scale = _scale_vector(hessian, metric)
        apply = _operator(hessian, scale)
        n = sum(p.numel() for p in hessian.params)
        gen = torch.Generator().manual_seed(seed)
        samples: list[float] = []
        history: list[float] = []
        std_error, converged = math.inf, False
        for k in range(max_hvp):
            z = (torch.randint(0, 2, (n,), generator=gen, dtype=torch.int8).to(_SOLVER_DTYPE) * 2 - 1).to(hessian.device)
            samples.append(float(torch.dot(z, apply(z))))
            mean = float(np.mean(samples))
            history.append(mean)
            if k + 1 >= 2:
                std_error = float(np.std(samples, ddof=1) / math.sqrt(k + 1))
            if k + 1 >= min_hvp and std_error <= tol * abs(mean):
                converged = True
                break
    return TraceResult(float(np.mean(samples)), std_error, len(samples), tuple(history), converged, hessian.loss, metric)


def riemannian_hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    tol: float = 1e-2,
    max_hvp: int = 1000,
    min_hvp: int = 10,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    reuse_graph: bool | None = None,
) -> TraceResult:
    """Hutchinson estimate of tr(Hess f) = tr(G^{-1} H) = sum_i ||W_i||^2 tr(H_ii) (beyond the thesis).

    Example 3.3.5 shows this trace is invariant under T_lambda; each probe is a
    Rademacher z in u coordinates, z^T S H S z, so the same seed gives the same
    estimate anywhere in an equivalence class. Stops once at least ``min_hvp`` probes
    give a standard error below ``tol * |mean|``, or after ``max_hvp``.
    """
    return _hessian_trace(
        model, loss_fn, data, metric="riemannian", tol=tol, max_hvp=max_hvp, min_hvp=min_hvp,
        batch_size=batch_size, dtype=dtype, seed=seed, reuse_graph=reuse_graph,
    )  # fmt: skip


def euclidean_hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    tol: float = 1e-2,
    max_hvp: int = 1000,
    min_hvp: int = 10,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
    reuse_graph: bool | None = None,
) -> TraceResult:
    """Hutchinson estimate of tr(H), for contrast with ``riemannian_hessian_trace``."""
    return _hessian_trace(
        model, loss_fn, data, metric="euclidean", tol=tol, max_hvp=max_hvp, min_hvp=min_hvp,
        batch_size=batch_size, dtype=dtype, seed=seed, reuse_graph=reuse_graph,
    )  # fmt: skip


def hvp(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    vector: dict[str, torch.Tensor] | Sequence[torch.Tensor],
    *,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Euclidean Hessian-vector product H v of the mean loss, blocks keyed by parameter name."""
    with evaluation_mode(model):
        hessian = LossHessian(model, loss_fn, data, batch_size=batch_size, dtype=dtype, reuse_graph=False)
        blocks = [vector[n] for n in hessian.names] if isinstance(vector, dict) else list(vector)
        return dict(zip(hessian.names, (h.detach() for h in hessian.hvp(blocks))))


def riemannian_hvp(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    vector: dict[str, torch.Tensor] | Sequence[torch.Tensor],
    *,
    batch_size: int | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Riemannian Hessian-vector product Hess f(W)[xi] = G^{-1} H xi (thesis Sec. 3.4.1.2).

    Steps 1-4 of the thesis: the metric inner product g(G^{-1} EGrad f, xi) equals
    <EGrad f, xi> with the norms held at W, so its Euclidean gradient is H xi, and
    premultiplying by G^{-1} = diag(||W_i||^2 I) gives the Riemannian HVP.
    """
    euclid = hvp(model, loss_fn, data, vector, batch_size=batch_size, dtype=dtype)
    norms = {name: float(p.detach().to(torch.float64).norm()) for name, p in parameter_blocks(model)}
    return {name: norms[name] ** 2 * h for name, h in euclid.items()}


def metric_inner(model: nn.Module, eta: dict[str, torch.Tensor], xi: dict[str, torch.Tensor]) -> torch.Tensor:
    """g_W(eta, xi) = sum_i <eta_i, xi_i> / ||W_i||^2 (Prop. 3.3.6), at the model's parameters."""
    total = 0.0
    for name, p in parameter_blocks(model):
        inner = torch.sum(eta[name].to(torch.float64) * xi[name].to(torch.float64))
        total = total + inner / p.detach().to(torch.float64).norm() ** 2
    return total


# --------------------------------------------------------------------------- rescaling and reporting


def rescale(model: nn.Module, lambdas: Sequence[float]) -> nn.Module:
    """T_lambda of thesis Sec. 3.3.1: a copy with W_i -> lambda_i W_i, b_i -> (prod_{j<=i} lambda_j) b_i.

    ``lambdas`` has one positive entry per Linear/Conv layer (forward order) and
    product 1; the copy computes the same function as ``model`` for networks that are
    chains of such layers with positively homogeneous activations (ReLU, max- or
    average-pooling, dropout in eval mode), e.g. every model in ``landscapes.core.models``.
    """
    net_layers = layers(model)
    lambdas = [float(v) for v in lambdas]
    if len(lambdas) != len(net_layers):
        raise ValueError(f"need one lambda per Linear/Conv layer: {len(net_layers)} layers, got {len(lambdas)}")
    if any(not v > 0 or not math.isfinite(v) for v in lambdas):
        raise ValueError(f"lambdas must be positive and finite, got {lambdas}")
    if abs(sum(math.log(v) for v in lambdas)) > 1e-9:
        raise ValueError(f"the lambdas' product must be 1 (Prop. 3.3.1), got {math.prod(lambdas)!r}")
    scaled = copy.deepcopy(model)
    running = 1.0
    with torch.no_grad():
        for layer, lam in zip(layers(scaled), lambdas):
            running *= lam
            layer.weight.mul_(lam)
            if getattr(layer, "bias", None) is not None:
                layer.bias.mul_(running)
    return scaled


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


__all__ = [
    "FlatnessResult",
    "LossHessian",
    "TraceResult",
    "WarmStage",
    "euclidean_hessian_trace",
    "euclidean_spectral_norm",
    "evaluation_mode",
    "hvp",
    "lanczos",
    "layers",
    "metric_inner",
    "parameter_blocks",
    "power_iteration",
    "rescale",
    "riemannian_hessian_trace",
    "riemannian_hvp",
    "riemannian_spectral_norm",
    "sharpness_bound",
]
