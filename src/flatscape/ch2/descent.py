"""Table 2.2: full-batch gradient descent from columnwise distance (h/5) delta of A*."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import pandas as pd
import torch

from flatscape.ch2.gradients import columnwise_distance, loss_and_gradient
from flatscape.ch2.model import STREAM_START, cell_generator, data_bias, delta_radius, perturbed_points
from flatscape.ch2.settings import Table22Settings
from flatscape.ch2.tables import THESIS_TABLE_2_2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DescentResult:
    """Where gradient descent stopped, and its trace (one entry per accepted step)."""

    weights: torch.Tensor
    converged: bool
    iterations: int
    evaluations: int
    losses: tuple[float, ...]
    grad_norms: tuple[float, ...]
    distances: tuple[float, ...]  # mean_i ||W_i - A*_i|| (nan without a dictionary)

    @property
    def covered_percent(self) -> float:
        """100 (d_0 - d_final) / d_0: the share of the initial columnwise distance covered."""
        return 100.0 * (self.distances[0] - self.distances[-1]) / self.distances[0]


def gradient_descent(
    weights: torch.Tensor,
    signals: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    dictionary: torch.Tensor | None = None,
    rel_tol: float = 2e-5,
    max_iter: int = 20000,
    step_rule: str = "bb",
    memory: int = 10,
    armijo: float = 1e-4,
    initial_move: float = 1e-2,
) -> DescentResult:
    """Full-batch gradient descent on the loss (2.2) until ||G||_F <= rel_tol ||G_0||_F (Sec. 2.6.2).

    Step sizes (the loss is roughly quartic in the scale of W far from A* and flat near
    it, so no fixed step works across the run):

    * ``"bb"``: Barzilai-Borwein steps alternating BB1 = s's/s'y and BB2 = s'y/y'y, with
      a non-monotone Armijo backtracking test against the largest of the last ``memory``
      losses (Grippo-Lampariello-Lucidi), halving on failure;
    * ``"armijo"``: monotone backtracking from twice the previous accepted step.

    The first trial step moves W by ``initial_move`` times its norm. Every trial costs
    one loss-and-gradient evaluation; an accepted trial's gradient is the next one's.
    """
    if step_rule not in ("bb", "armijo"):
        raise ValueError(f"step_rule must be 'bb' or 'armijo', got {step_rule!r}")
    w = weights.clone()
    loss, grad = loss_and_gradient(w, signals, eps)
    loss, g_norm = float(loss), float(grad.norm())
    tol = rel_tol * g_norm
    step = initial_move * float(w.norm()) / max(g_norm, 1e-300)
    losses, norms = [loss], [g_norm]
    dists = [float(columnwise_distance(w, dictionary)) if dictionary is not None else math.nan]
    evaluations, iteration, toggle = 1, 0, False
    while g_norm > tol and iteration < max_iter:
        reference = max(losses[-memory:]) if step_rule == "bb" else loss
        g_sq = g_norm**2
        while True:
            trial = w - step * grad
            trial_loss, trial_grad = loss_and_gradient(trial, signals, eps)
            trial_loss = float(trial_loss)
            evaluations += 1
            if math.isfinite(trial_loss) and trial_loss <= reference - armijo * step * g_sq:
                break
            step *= 0.5
            if step * g_norm < 1e-14 * max(float(w.norm()), 1.0):
                log.warning("line search stalled at iteration %d (loss %.6g)", iteration, loss)
                return _descent_result(w, False, iteration, evaluations, losses, norms, dists)
        s_vec, y_vec = trial - w, trial_grad - grad
        w, grad, loss = trial, trial_grad, trial_loss
        g_norm = float(grad.norm())
        iteration += 1
        losses.append(loss)
        norms.append(g_norm)
        dists.append(float(columnwise_distance(w, dictionary)) if dictionary is not None else math.nan)
        if step_rule == "bb":
            sy, ss, yy = float((s_vec * y_vec).sum()), float(s_vec.square().sum()), float(y_vec.square().sum())
            if sy > 0:
                toggle = not toggle
                step = ss / sy if toggle else sy / yy
            else:  # negative curvature along s: take a longer step and let the test judge it
                step *= 2.0
        else:
            step *= 2.0
    return _descent_result(w, g_norm <= tol, iteration, evaluations, losses, norms, dists)


def _descent_result(w, converged, iteration, evaluations, losses, norms, dists) -> DescentResult:
    return DescentResult(
        weights=w, converged=bool(converged), iterations=iteration, evaluations=evaluations,
        losses=tuple(losses), grad_norms=tuple(norms), distances=tuple(dists),
    )


def table_2_2(settings: Table22Settings) -> pd.DataFrame:
    """Table 2.2: gradient descent from columnwise distance ``start_factor * h * delta``
    (the thesis's (h/5) delta, delta = h^(-2p)) and the percentage of the initial average
    columnwise distance to A* that it covers; one row per (rule, h, p), the thesis's
    value beside each."""
    device = settings.data.torch_device()
    return pd.DataFrame(
        [_descent_row(settings, rule, h, p, device) for rule in settings.rules for h in settings.h_values for p in settings.p_values]
    )


def _descent_row(settings: Table22Settings, rule: str, h: int, p: float, device: torch.device) -> dict:
    started = time.perf_counter()
    data = settings.data.generate(h, p, device)
    eps = data_bias(rule, data)
    start_distance = settings.start_factor * h * delta_radius(h, p)
    w0 = perturbed_points(data.dictionary, start_distance, cell_generator(settings.data.seed, STREAM_START, h, p), 1)[0]
    result = gradient_descent(
        w0, data.signals, eps, dictionary=data.dictionary, rel_tol=settings.rel_tol, max_iter=settings.max_iter, step_rule=settings.step_rule
    )
    seconds = time.perf_counter() - started
    log.info(
        "descent %s h=%d p=%g: covered %.2f%% (thesis %s) in %d steps / %d evaluations, %.1f s",
        rule, h, p, result.covered_percent, THESIS_TABLE_2_2.get((h, p)), result.iterations, result.evaluations, seconds,
    )
    return {
        "rule": rule, "h": h, "p": p, "k": data.k, "bias": eps, "step_rule": settings.step_rule,
        "initial_distance": result.distances[0], "final_distance": result.distances[-1],
        "covered_percent": result.covered_percent, "thesis_covered_percent": THESIS_TABLE_2_2.get((h, p), math.nan),
        "initial_loss": result.losses[0], "final_loss": result.losses[-1],
        "grad_norm_ratio": result.grad_norms[-1] / result.grad_norms[0],
        "converged": result.converged, "iterations": result.iterations, "evaluations": result.evaluations,
        "seconds": seconds,
    }
