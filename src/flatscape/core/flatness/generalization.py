"""The field's other flatness and generalization measures, on any model and data (beyond the thesis).

Each function takes the same ``(model, loss_fn, data)`` as the spectral measures
(``data`` an ``(inputs, targets)`` pair or an iterable of pairs, ``loss_fn`` the *mean*
loss over its batch), evaluates the model in eval mode on detached copies of its
parameters (the caller's model is never modified) and returns a ``MeasureResult``.
The loss is the mean over all samples given, accumulated over micro-batches of
``batch_size`` so the value does not depend on it. Random draws are made on the CPU in
float64 from a ``torch.Generator`` seeded with ``seed``, one flat vector over the
parameter blocks (``parameter_blocks`` order) per draw, so a seed gives the same draws
on every device and, for the rescaling-aware measures, the same perturbed *functions*
anywhere in a T_lambda equivalence class.

Invariance under T_lambda (``rescale``: every block scaled by a positive c_i, a
symmetry of the function): the gradient scales by 1/c_i and the Hessian block (i, j)
by 1/(c_i c_j), so

- relative flatness, adaptive sharpness (both), magnitude-aware PAC-Bayes flatness
  with ``eps=0``, the Fisher-Rao norm and the trace of the Riemannian Hessian are
  invariant (each test in tests/test_generalization_measures.py checks it);
- PAC-Bayes flatness with isotropic noise, like the Euclidean spectral norm, is not
  (and neither is the magnitude-aware one exactly when ``eps > 0``).

Bad settings (a non-positive radius, sample count, step count or bound) raise
``ValueError`` naming the argument before any forward pass.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
from torch import nn
from torch.func import jvp

from flatscape.core.flatness.batches import Data, LossFn
from flatscape.core.flatness.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MAX_HVP, DEFAULT_SEED
from flatscape.core.flatness.hessian import evaluation_mode
from flatscape.core.flatness.measures import riemannian_hessian_trace
from flatscape.core.flatness.symmetry import layers
from flatscape.core.flatness.pac_bayes import pac_bayes_flatness, pac_bayes_mag_flatness
from flatscape.core.flatness.perturbation import DEFAULT_AVERAGE_RHO, DEFAULT_RHO, DEFAULT_SAMPLES, DEFAULT_STEPS, DEFAULT_TRACE_PROBES, DEFAULT_TRACE_TOL, MeasureResult, _Point, _axpy, _norm, _positive
from flatscape.core.flatness.perturbation import GENERALIZATION_MEASURES, PAC_BAYES_CRITERIA  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


# ---- Relative flatness (Petzka et al. 2021) ------------------------------------------------


def _feature_layer(model: nn.Module, layer: str | None) -> tuple[str, nn.Linear]:
    if layer is None:
        net_layers = layers(model)
        if not net_layers:
            raise ValueError("relative_flatness needs a Linear layer; the model has no Linear/Conv layer")
        module = net_layers[-1]
        layer = next(name for name, m in model.named_modules() if m is module)
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"layer: the model has no module {layer!r}")
    if not isinstance(modules[layer], nn.Linear):
        raise ValueError(f"layer: relative flatness is defined on a Linear layer's weights, {layer!r} is a {type(modules[layer]).__name__}")
    return layer, modules[layer]


def relative_flatness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    layer: str | None = None,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
) -> MeasureResult:
    """Relative flatness kappa_Tr of Petzka et al., "Relative Flatness and Generalization" (NeurIPS 2021).

    For the feature layer z = W phi(x) + b (W in R^{d x m}, rows w_s = the weights into
    output neuron s; by default the network's last Linear layer, whose input phi(x) is
    the penultimate layer's representation, as in the paper's experiments):

        kappa_Tr(w) = sum_{s, s'=1}^{d} <w_s, w_s'> Tr(H_{s,s'}),

    H_{s,s'} the m x m block of the Hessian of the mean training loss with respect to
    w_s and w_s'. Since z is linear in W, the Hessian in W of sample i's loss h_i(z_i) is
    phi_i phi_i^T (x) nabla^2_z h_i, so Tr(H_{s,s'}) = (1/N) sum_i ||phi_i||^2 [nabla^2_z h_i]_{ss'}
    and kappa_Tr = (1/N) sum_i ||phi_i||^2 tr(W W^T nabla^2_z h_i): exact, with d backward
    passes per micro-batch. The layer's output must be the model's output (h_i = loss).
    Invariant under T_lambda: W -> c W scales phi by 1/c and leaves z and h_i unchanged.
    """
    name, lin = _feature_layer(model, layer)
    point = _Point(model, loss_fn, data, batch_size)
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, inputs, output):
        captured["phi"], captured["z"] = inputs[0], output

    weight = dict(zip(point.names, point.params)).get(f"{name}.weight")
    if weight is None:
        raise ValueError(f"layer: {name!r}.weight is not a trainable parameter")
    gram = (weight.to(torch.float64) @ weight.to(torch.float64).T)
    total, loss_total = 0.0, 0.0
    handle = lin.register_forward_hook(hook)
    try:
        for x, y in point.batches:
            x, y = point._batch(x, y)
            with torch.no_grad():
                out = point.outputs(point.params, x)
            phi, z = captured["phi"].detach(), captured["z"].detach()
            if z.shape != out.shape or not torch.equal(z, out):
                raise ValueError(f"layer: the output of {name!r} is not the model's output, so relative flatness "
                                 "(on the last layer's weights) does not apply; pass the last Linear layer")
            with torch.enable_grad():
                zz = z.clone().requires_grad_(True)
                # loss_fn is a mean: times the batch size it is the sum of per-sample losses
                summed = loss_fn(zz, y) * len(x)
                grad = torch.autograd.grad(summed, zz, create_graph=True)[0]
                rows = [torch.autograd.grad(grad[:, s].sum(), zz, retain_graph=True)[0] for s in range(z.shape[1])]
            hess = torch.stack(rows, dim=1).to(torch.float64)  # (n, d, d): per-sample Hessian in z
            phi_sq = phi.reshape(len(x), -1).to(torch.float64).pow(2).sum(dim=1)
            total += float((phi_sq * torch.einsum("st,nts->n", gram, hess)).sum())
            loss_total += float(summed.detach())
    finally:
        handle.remove()
    return MeasureResult("relative_flatness", total / point.num_samples, loss_total / point.num_samples, {"layer": name})


# ---- Adaptive sharpness (Kwon et al. 2021; Andriushchenko et al. 2023) ---------------------


def adaptive_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    rho: float = DEFAULT_RHO,
    steps: int = DEFAULT_STEPS,
    seed: int = DEFAULT_SEED,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
) -> MeasureResult:
    """Worst-case adaptive sharpness, l2, elementwise c = |w| (Kwon et al., "ASAM", ICML 2021;
    Andriushchenko et al., "A Modern Look at the Relationship between Sharpness and
    Generalization", ICML 2023):

        S_max^rho(w) = max_{||delta / |w| ||_2 <= rho} L(w + delta) - L(w),

    L the mean loss over all samples given (one batch: Andriushchenko's m equals the
    number of samples). Found by ``steps`` steps of projected gradient ascent in
    u = delta / |w|: from a seeded random u on the sphere of radius rho, each step moves
    u by rho along the normalised gradient |w| * grad L(w + |w| u) and projects back
    onto the ball; the value is the largest increase seen (a lower bound of the max).
    Invariant under T_lambda: L(w + |w| u) is the same function of u at every point of
    the class, so the iterates are the same.
    """
    rho = _positive("rho", rho)
    steps = _positive("steps", steps, integer=True)
    point = _Point(model, loss_fn, data, batch_size)
    scale = [p.abs() for p in point.params]
    base = point.loss(point.params)
    gen = torch.Generator().manual_seed(seed)
    u = point.draw(gen)
    u = [v * (rho / _norm(u)) for v in u]
    best = -math.inf
    for _ in range(steps):
        value, grad = point.loss_and_grad(_axpy(point.params, scale, u))
        best = max(best, value - base)
        g = [c * gb for c, gb in zip(scale, grad)]
        g_norm = _norm(g)
        if g_norm == 0.0:
            break
        u = [v + (rho / g_norm) * gb for v, gb in zip(u, g)]
        u_norm = _norm(u)
        if u_norm > rho:
            u = [v * (rho / u_norm) for v in u]
    best = max(best, point.loss(_axpy(point.params, scale, u)) - base)
    return MeasureResult("adaptive_sharpness", best, base, {"rho": rho, "steps": steps})


def adaptive_sharpness_avg(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    rho: float = DEFAULT_AVERAGE_RHO,
    samples: int = DEFAULT_SAMPLES,
    seed: int = DEFAULT_SEED,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
) -> MeasureResult:
    """Average-case adaptive sharpness (Andriushchenko et al. 2023), elementwise c = |w|:

        S_avg^rho(w) = E_{delta ~ N(0, rho^2 diag(|w|^2))} L(w + delta) - L(w),

    by Monte Carlo over ``samples`` seeded draws. Near a minimum it is about
    (rho^2 / 2) sum_i w_i^2 H_ii. Invariant under T_lambda (the same draws give the same
    perturbed functions).
    """
    rho = _positive("rho", rho)
    samples = _positive("samples", samples, integer=True)
    point = _Point(model, loss_fn, data, batch_size)
    scale = [rho * p.abs() for p in point.params]
    base = point.loss(point.params)
    gen = torch.Generator().manual_seed(seed)
    losses = [point.loss(_axpy(point.params, scale, point.draw(gen))) for _ in range(samples)]
    mean = sum(losses) / samples
    return MeasureResult("adaptive_sharpness_avg", mean - base, base, {"rho": rho, "samples": samples})


# ---- Fisher-Rao norm (Liang et al. 2019, as in Jiang et al. 2020) ---------------------------


def fisher_rao_norm(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
) -> MeasureResult:
    """The Fisher-Rao norm of Liang et al., "Fisher-Rao Metric, Geometry, and Complexity of
    Neural Networks" (AISTATS 2019), as Jiang et al. (2020) compute it (measure fisher-rao):

        mu_fr(w) = (d + 1)^2 / N sum_i <w, grad_w l(f_w(x_i), y_i)>^2,

    d the number of Linear/Conv layers, l the per-sample loss with the true labels.
    <w, grad_w l_i> = <grad_z l_i, J_i w>, J_i w the directional derivative of the
    outputs along w (one forward-mode pass). Invariant under T_lambda: the gradient
    of block i scales by 1/c_i when the block scales by c_i.
    """
    depth = len(layers(model))
    if depth == 0:
        raise ValueError("fisher_rao_norm needs Linear/Conv layers to count the depth; the model has none")
    point = _Point(model, loss_fn, data, batch_size)
    total, loss_total = 0.0, 0.0
    for x, y in point.batches:
        x, y = point._batch(x, y)
        with evaluation_mode(model):
            out, tangent = jvp(lambda *ps: point.outputs(ps, x), tuple(point.params), tuple(point.params))
        with torch.enable_grad():
            z = out.detach().requires_grad_(True)
            summed = loss_fn(z, y) * len(x)  # loss_fn is a mean: this is the sum of per-sample losses
            per_sample = torch.autograd.grad(summed, z)[0]
        inner = (per_sample * tangent.detach()).reshape(len(x), -1).sum(dim=1).to(torch.float64)
        total += float(inner.pow(2).sum())
        loss_total += float(summed.detach())
    value = (depth + 1) ** 2 * total / point.num_samples
    return MeasureResult("fisher_rao_norm", value, loss_total / point.num_samples, {"depth": depth})


# ---- The trace of the Riemannian Hessian (this project's engine) ----------------------------


def riemannian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    *,
    probes: int = DEFAULT_TRACE_PROBES,
    tol: float = DEFAULT_TRACE_TOL,
    seed: int = DEFAULT_SEED,
    batch_size: int | None = DEFAULT_BATCH_SIZE,
) -> MeasureResult:
    """tr(Hess f) = tr(G^{-1} H) = sum_i ||W_i||^2 tr(H_ii), by Hutchinson (``riemannian_hessian_trace``)
    with at most ``probes`` Rademacher probes, stopping once the standard error is below
    ``tol`` times the mean. Invariant under T_lambda (Example 3.3.5 of the thesis)."""
    probes = _positive("probes", probes, integer=True)
    tol = _positive("tol", tol)
    res = riemannian_hessian_trace(model, loss_fn, data, tol=tol, max_hvp=min(probes, DEFAULT_MAX_HVP),
                                   min_hvp=max(2, min(10, probes)), seed=seed, batch_size=batch_size)
    return MeasureResult("riemannian_trace", res.value, res.loss,
                         {"std_error": res.std_error, "num_hvp": res.num_hvp, "converged": res.converged})


MEASURE_FUNCTIONS: dict[str, Callable[..., MeasureResult]] = {
    "relative_flatness": relative_flatness,
    "adaptive_sharpness": adaptive_sharpness,
    "adaptive_sharpness_avg": adaptive_sharpness_avg,
    "pac_bayes_flatness": pac_bayes_flatness,
    "pac_bayes_mag_flatness": pac_bayes_mag_flatness,
    "fisher_rao_norm": fisher_rao_norm,
    "riemannian_trace": riemannian_trace,
}
