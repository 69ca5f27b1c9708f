"""Table 2.1 and its extensions: the expected gradient at random points delta/2 from A*.

One pass over the (h, p) grid serves Table 2.1, the support-recovery table (Theorem
2.3.1) and the bias-reading study: every reading sees the same data and the same points.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Iterator

import pandas as pd
import torch

from flatscape.ch2.gradients import (
    ActivePairs,
    bias_column,
    candidate_pairs,
    column_norms,
    dense_from_hidden,
    dense_support_counts,
    pairs_at_candidates,
    points_per_batch,
    sparse_loss_and_gradient,
)
from flatscape.ch2.model import (
    STREAM_POINTS,
    SparseCodingData,
    cell_generator,
    coherence_report,
    data_bias,
    delta_radius,
    perturbed_points,
    support_recovery_bound,
)
from flatscape.ch2.settings import Table21Settings
from flatscape.ch2.tables import (
    THESIS_TABLE_2_1,
    bias_reading_summary,
    closest_reading_per_cell,
    support_recovery_frame,
    table_2_1_frame,
)

log = logging.getLogger(__name__)

# One evaluation of a batch of points under one rule: (rule, loss (B,), gradient (B, h, n), support counts).
Evaluation = tuple[str, torch.Tensor, torch.Tensor, tuple[int, int, int]]


@dataclass(frozen=True)
class StudyOptions:
    """How ``gradient_study`` evaluates the gradient.

    Speed (results are identical either way): every point is A*^T + r U with unit rows
    u_i, so |W_i y - <A*_i, y>| <= r ||y|| and only pairs with <A*_i, y_s> > eps - r ||y_s||
    can ever fire. When those candidates are fewer than ``candidate_below`` of all
    (i, s) pairs, each point evaluates W_i y_s at the candidates alone instead of the
    full product W Y; otherwise W Y is formed and the sparse path is used while fewer
    than ``sparse_below`` of the pairs are active.

    Two variants probe readings of Sec. 2.6 (docs/ch2_bias_reading.md):
    ``normalize_rows`` rescales every W_i to unit norm after the step (the points then
    sit slightly less than delta/2 away), ``normalize_signals`` divides every y by ||y||.
    """

    sparse_below: float = 0.02
    candidate_below: float = 0.05
    normalize_rows: bool = False
    normalize_signals: bool = False


def table_2_1(settings: Table21Settings) -> dict[str, pd.DataFrame]:
    """Table 2.1, the support-recovery table, the per-reading study and its summary, and
    the coherence report (captions: ``tables.table_2_1_captions``)."""
    study = gradient_study(settings)
    return {
        "table": table_2_1_frame(study, settings.bias_rule),
        "support": support_recovery_frame(study, settings.bias_rule, a=settings.data.a, b=settings.data.b),
        "readings": study,
        "summary": bias_reading_summary(study),
        "closest": closest_reading_per_cell(study),
        "coherence": coherence_report(settings.h_values, n=settings.data.n, seed=settings.data.seed),
    }


def gradient_study(settings: Table21Settings, options: StudyOptions = StudyOptions()) -> pd.DataFrame:
    """The expected gradient at ``num_points`` random points columnwise delta/2 from A*
    (Sec. 2.6.2, Table 2.1), under each of ``settings.rules``, with support-recovery counts.

    One row per (h, p, rule). ``grad_norm_of_mean`` is mean_i ||(1/P) sum_points G_i||,
    the column norm of the gradient averaged over the points first;
    ``grad_mean_of_norms`` is (1/P) sum_points mean_i ||G_i||. Support recovery (Theorem
    2.3.1) is counted over every (point, signal, unit): ``on_support_active`` =
    P[r_i > 0 | i in S], ``off_support_silent`` = P[r_i = 0 | i not in S],
    ``exact_support`` = P[{i : r_i > 0} = S].
    """
    device = settings.data.torch_device()
    return pd.DataFrame([row for h in settings.h_values for p in settings.p_values for row in _cell_rows(settings, h, p, device, options)])


def _cell_rows(settings: Table21Settings, h: int, p: float, device: torch.device, options: StudyOptions) -> list[dict]:
    """The rows of one (h, p) cell, one per rule."""
    started = time.perf_counter()
    data = settings.data.generate(h, p, device)
    if options.normalize_signals:
        data = dataclasses.replace(data, signals=data.signals / data.signals.norm(dim=0, keepdim=True))
    radius = delta_radius(h, p) / 2.0
    biases = {rule: data_bias(rule, data) for rule in settings.rules}
    points = cell_generator(settings.data.seed, STREAM_POINTS, h, p)
    sums = _accumulate(data, radius, biases, points, settings, options)
    seconds = time.perf_counter() - started
    thesis_grad, thesis_h_pow = THESIS_TABLE_2_1.get((h, p), (math.nan, math.nan))
    rows = [
        {
            "rule": rule, "h": h, "p": p, "k": data.k, "n": settings.data.n, "num_signals": settings.data.num_signals,
            "num_points": settings.num_points, "coherence": data.coherence, "xi": data.xi,
            "delta": delta_radius(h, p), "radius": radius, "bias": biases[rule],
            **sums[rule].summary(settings.num_points, settings.data.num_signals, h, data.k),
            "h_pow_p_minus_1": h ** (p - 1.0),
            "theorem_bound": support_recovery_bound(h, p, data.m1, data.a, data.b),
            "thesis_grad": thesis_grad, "thesis_h_pow_p_minus_1": thesis_h_pow,
            "seconds": seconds,
        }
        for rule in settings.rules
    ]
    log.info(
        "h=%d p=%g k=%d: %s (%.1f s)", h, p, data.k,
        ", ".join(f"{row['rule']}: {row['grad_norm_of_mean']:.4g}" for row in rows), seconds,
    )
    return rows


def _accumulate(
    data: SparseCodingData,
    radius: float,
    biases: dict[str, float],
    points: torch.Generator,
    settings: Table21Settings,
    options: StudyOptions,
) -> dict[str, _Accumulator]:
    """Sums over ``settings.num_points`` random points ``radius`` from A*, per rule, drawn
    from ``points`` in batches that fit ``settings.max_elements``."""
    order = sorted(biases, key=biases.get)  # ascending, so each rule's active pairs are a subset of the last's
    sums = {rule: _Accumulator(data.h, data.n, data.dictionary.device) for rule in biases}
    # the candidate bound assumes rows exactly `radius` from A*; normalised rows use W Y
    candidates = None if options.normalize_rows else candidate_pairs(data, radius, biases[order[0]], limit=options.candidate_below)
    per_batch = points_per_batch(data.h, data.num_signals, settings.max_elements)
    for start in range(0, settings.num_points, per_batch):
        weights = perturbed_points(data.dictionary, radius, points, min(per_batch, settings.num_points - start))
        if options.normalize_rows:
            weights = weights / weights.norm(dim=-1, keepdim=True)
        if candidates is not None:
            evaluations = _at_candidates(weights, data, candidates, order, biases)
        else:
            evaluations = _after_product(weights, data, order, biases, options.sparse_below)
        for rule, loss, grad, counts in evaluations:
            sums[rule].add(loss, grad, counts)
    return sums


def _at_candidates(
    weights: torch.Tensor, data: SparseCodingData, candidates: torch.Tensor, order: list[str], biases: dict[str, float]
) -> Iterator[Evaluation]:
    """Every rule on one batch, from W_i y_s at the candidate pairs only (no product W Y)."""
    pairs = pairs_at_candidates(weights, data.signals, candidates, bias_column(biases[order[0]], weights))
    for rule in order:
        pairs = pairs.restrict(bias_column(biases[rule], weights))
        loss, grad = sparse_loss_and_gradient(weights, data.signals, pairs)
        yield rule, loss, grad, pairs.support_counts(data.support)


def _after_product(
    weights: torch.Tensor, data: SparseCodingData, order: list[str], biases: dict[str, float], sparse_below: float
) -> Iterator[Evaluation]:
    """Every rule on one batch from the full product W Y: dense while many pairs fire,
    then sparse, each larger bias filtering the active pairs of the one before."""
    product = weights @ data.signals
    pairs = None
    for rule in order:
        bias = bias_column(biases[rule], weights)
        if pairs is None:
            active = product > bias
            if int(torch.count_nonzero(active)) >= sparse_below * active.numel():
                loss, grad = dense_from_hidden(weights, data.signals, (product - bias).clamp_min_(0.0))
                yield rule, loss, grad, dense_support_counts(active, data.support)
                continue
            pairs = ActivePairs.from_mask(product, active, bias)
            del active  # spare the (B, h, N) mask while the sparse products run
        else:
            pairs = pairs.restrict(bias)
        loss, grad = sparse_loss_and_gradient(weights, data.signals, pairs)
        yield rule, loss, grad, pairs.support_counts(data.support)


class _Accumulator:
    """Running sums over points for one (h, p, rule) cell."""

    def __init__(self, h: int, n: int, device: torch.device) -> None:
        self.grad_sum = torch.zeros(h, n, dtype=torch.float64, device=device)
        self.norm_sum = 0.0
        self.loss_sum = 0.0
        self.on = self.off = self.exact = 0

    def add(self, loss: torch.Tensor, grad: torch.Tensor, counts: tuple[int, int, int]) -> None:
        self.grad_sum += grad.to(torch.float64).sum(dim=0)
        self.norm_sum += float(column_norms(grad.to(torch.float64)).mean(dim=-1).sum())
        self.loss_sum += float(loss.to(torch.float64).sum())
        on, off, exact = counts
        self.on, self.off, self.exact = self.on + on, self.off + off, self.exact + exact

    def summary(self, points: int, signals: int, h: int, k: int) -> dict[str, float]:
        pairs = points * signals
        return {
            "grad_norm_of_mean": float(column_norms(self.grad_sum / points).mean()),
            "grad_fro_over_h": float((self.grad_sum / points).norm() / h),
            "grad_mean_of_norms": self.norm_sum / points,
            "loss_mean": self.loss_sum / points,
            "active_fraction": (self.on + self.off) / (pairs * h),
            "on_support_active": self.on / (pairs * k),
            "off_support_silent": 1.0 - self.off / (pairs * (h - k)),
            "exact_support": self.exact / pairs,
        }
