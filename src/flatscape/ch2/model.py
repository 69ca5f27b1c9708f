"""Chapter 2's generative model: the dictionary, the sparse codes, the signals and the bias.

Data follow the generative model of thesis Sec. 2.2.1 / 2.6.1: a Gaussian dictionary
``A*`` (n x h) with unit-norm columns, codes ``x*`` with a uniformly random support of
size ``k = round(h^p)`` and non-zeros uniform on ``[a, b]``, signals ``y = A* x*``.
The autoencoder (2.1) is ``r = ReLU(W y - eps)``, ``y_hat = W^T r`` with ``W`` (h x n)
whose rows ``W_i`` are the columns of ``W^T``; the loss (2.2) ``L = 1/2 ||y_hat - y||^2``
is averaged over the N signals (``flatscape.ch2.gradients``).

Conventions used throughout (all measured, never typed in):

* ``coherence`` is ``max_{i != j} |<A*_i, A*_j>|``, which Sec. 2.2.1 names ``mu / sqrt(n)``
  and ``h^-xi``; ``xi = -log(coherence) / log(h)``.
* ``delta = h^(-2p)`` (Sec. 2.6.2: points are columnwise ``delta / 2 = 1 / (2 h^(2p))``
  from ``A*``).
* ``m1 = (a + b) / 2`` and ``m2 = (a^2 + ab + b^2) / 3`` are the moments of the uniform
  non-zeros; the bias formulas use the real ``h^p`` for ``k`` (as the proofs substitute it).

The bias ``eps`` of Theorem 2.3.1 kills the hidden layer at n = 50 (see ``BIAS_RULES``
and docs/ch2_bias_reading.md), so the rule is an explicit argument everywhere.

Randomness: every random draw comes from a torch CPU generator seeded by
``numpy.random.SeedSequence`` of ``(seed, stream, h, p)``, and is moved to the target
device/dtype afterwards, so results do not depend on device, dtype or batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

BIAS_RULES: dict[str, str] = {
    "theorem": "eps = 2 m1 h^p (delta + mu/sqrt(n)) with mu/sqrt(n) = coherence (Theorem 2.3.1 as printed)",
    "mu_is_coherence": "eps = 2 m1 h^p (delta + coherence/sqrt(n)): the symbol mu read as the coherence itself",
    "no_coherence": "eps = 2 m1 h^p delta (the incoherence term dropped)",
    "half": "eps = m1 h^p (delta + coherence)",
    "quarter": "eps = m1 h^p (delta + coherence) / 2 (the factor 1/2 of a co-author's MATLAB bias)",
    "radius": "eps = 2 m1 h^p (delta/2 + coherence/sqrt(n)): the points' actual radius delta/2 and mu = coherence",
    "zero": "eps = 0 (no bias)",
}

# The named random streams; a stream never shares draws with another.
STREAM_DICTIONARY, STREAM_CODES, STREAM_POINTS, STREAM_DIRECTION, STREAM_START = 1, 2, 3, 4, 5


# ---- Seeds ------------------------------------------------------------------------------
def make_generator(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator for one named random stream, independent of every other stream."""
    state = np.random.SeedSequence([int(seed), *[int(s) for s in stream]]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state >> np.uint64(1)))


def cell_generator(seed: int, stream: int, h: int, p: float, *extra: int) -> torch.Generator:
    """``make_generator`` for one (h, p) cell; p enters in millionths, as the seed needs integers."""
    return make_generator(seed, stream, h, int(round(p * 1_000_000)), *extra)


# ---- The generative model ------------------------------------------------------------------
def support_size(h: int, p: float) -> int:
    """k = h^p rounded to the nearest integer, at least 1 (Sec. 2.6.1: "h^p non-zero entries")."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    return max(1, int(round(h**p)))


def delta_radius(h: int, p: float) -> float:
    """delta = h^(-2p): Sec. 2.6.2 evaluates the gradient columnwise delta/2 = 1/(2 h^(2p)) from A*."""
    return float(h ** (-2.0 * p))


def random_unit_rows(rows: int, cols: int, generator: torch.Generator, *, batch: int | None = None) -> torch.Tensor:
    """Standard normal rows scaled to unit norm (float64 on the CPU); shape (batch, rows, cols) if batch."""
    shape = (rows, cols) if batch is None else (batch, rows, cols)
    u = torch.randn(shape, generator=generator, dtype=torch.float64)
    return u / u.norm(dim=-1, keepdim=True)


def generate_dictionary(n: int, h: int, *, seed: int, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Gaussian dictionary A* (n x h) with unit-norm columns (Sec. 2.6.1); one per (seed, h)."""
    columns = random_unit_rows(h, n, make_generator(seed, STREAM_DICTIONARY, h, n))
    return columns.T.contiguous().to(device=device, dtype=dtype)


def coherence(dictionary: torch.Tensor) -> float:
    """max_{i != j} |<A_i, A_j>| over the columns of ``dictionary`` (= mu / sqrt(n) = h^-xi, Sec. 2.2.1)."""
    gram = (dictionary.T.to(torch.float64) @ dictionary.to(torch.float64)).abs()
    gram.fill_diagonal_(0.0)
    return float(gram.max())


@dataclass(frozen=True)
class SparseCodingData:
    """Signals Y = A* X* of Sec. 2.6.1; the codes are kept sparse as (support, values)."""

    dictionary: torch.Tensor  # A*, (n, h), unit-norm columns
    support: torch.Tensor  # (N, k) long, the support of each code (uniform k-subset of [h])
    values: torch.Tensor  # (N, k), the non-zeros, uniform on [a, b]
    signals: torch.Tensor  # Y, (n, N)
    p: float
    a: float
    b: float
    coherence: float

    @property
    def n(self) -> int:
        return self.dictionary.shape[0]

    @property
    def h(self) -> int:
        return self.dictionary.shape[1]

    @property
    def k(self) -> int:
        return self.support.shape[1]

    @property
    def num_signals(self) -> int:
        return self.signals.shape[1]

    @property
    def m1(self) -> float:
        """E[x_i* | i in S] for uniform non-zeros."""
        return (self.a + self.b) / 2.0

    @property
    def m2(self) -> float:
        """E[x_i*^2 | i in S] for uniform non-zeros."""
        return (self.a**2 + self.a * self.b + self.b**2) / 3.0

    @property
    def xi(self) -> float:
        """The incoherence exponent: coherence = h^-xi."""
        return -math.log(self.coherence) / math.log(self.h)

    def dense_codes(self) -> torch.Tensor:
        """X* as a dense (h, N) matrix."""
        codes = torch.zeros(self.num_signals, self.h, dtype=self.values.dtype, device=self.values.device)
        codes.scatter_(1, self.support, self.values)
        return codes.T


def generate_data(
    n: int,
    h: int,
    p: float,
    num_signals: int,
    *,
    a: float = 1.0,
    b: float = 10.0,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SparseCodingData:
    """Draw A*, N codes with uniformly random supports of size k = round(h^p) and
    uniform[a, b] non-zeros, and Y = A* X* (Sec. 2.6.1).

    A* depends on (seed, n, h) only, so every p of one h shares a dictionary; the codes
    depend on (seed, h, p). Y is formed in float64 and then cast.
    """
    if not 0 < a < b:
        raise ValueError(f"need 0 < a < b, got a={a}, b={b}")
    k = support_size(h, p)
    dictionary64 = generate_dictionary(n, h, seed=seed, dtype=torch.float64)
    gen = cell_generator(seed, STREAM_CODES, h, p, num_signals)
    # The k smallest of h iid uniforms sit at a uniformly random k-subset.
    support = torch.rand(num_signals, h, generator=gen, dtype=torch.float64).topk(k, dim=1, largest=False).indices
    values = a + (b - a) * torch.rand(num_signals, k, generator=gen, dtype=torch.float64)
    signals = torch.einsum("nsk,sk->ns", dictionary64[:, support], values)
    return SparseCodingData(
        dictionary=dictionary64.to(device=device, dtype=dtype),
        support=support.to(device),
        values=values.to(device=device, dtype=dtype),
        signals=signals.to(device=device, dtype=dtype),
        p=float(p),
        a=float(a),
        b=float(b),
        coherence=coherence(dictionary64),
    )


def coherence_report(h_values: Sequence[int], *, n: int = 50, seed: int = 0) -> pd.DataFrame:
    """Measured coherence max |<A*_i, A*_j>| and the xi it implies, per h (Sec. 2.2.1, 2.6.1)."""
    rows = []
    for h in h_values:
        c = coherence(generate_dictionary(n, h, seed=seed, dtype=torch.float64))
        rows.append({"h": h, "n": n, "coherence": c, "xi": -math.log(c) / math.log(h), "mu": c * math.sqrt(n)})
    return pd.DataFrame(rows)


# ---- Points around A* ----------------------------------------------------------------------
def perturbed_points(dictionary: torch.Tensor, radius: float, generator: torch.Generator, count: int) -> torch.Tensor:
    """``count`` matrices W (h x n) whose rows sit exactly ``radius`` from the columns of A*:
    W_i = A*_i + radius u_i with u_i uniform on the unit sphere (Sec. 2.6.2)."""
    n, h = dictionary.shape
    steps = random_unit_rows(h, n, generator, batch=count).to(device=dictionary.device, dtype=dictionary.dtype)
    return dictionary.T + radius * steps


def random_direction(n: int, h: int, *, seed: int) -> torch.Tensor:
    """Delta W (h x n) from a standard normal with unit-norm columns of Delta W^T (its rows),
    so every column of W^T = A* + t Delta W^T moves exactly |t| (Sec. 2.6.2); one per (seed, h)."""
    return random_unit_rows(h, n, make_generator(seed, STREAM_DIRECTION, h, n))


# ---- The bias and Theorem 2.3.1 --------------------------------------------------------------
def bias_value(rule: str, *, h: int, p: float, n: int, m1: float, coherence: float) -> float:
    """The hidden-layer bias eps under one reading of Theorem 2.3.1 (see ``BIAS_RULES``).

    ``k`` enters as the real h^p and ``delta`` as h^(-2p), the radius of Sec. 2.6.2.
    """
    k, delta = h**p, delta_radius(h, p)
    rules: dict[str, Callable[[], float]] = {
        "theorem": lambda: 2 * m1 * k * (delta + coherence),
        "mu_is_coherence": lambda: 2 * m1 * k * (delta + coherence / math.sqrt(n)),
        "no_coherence": lambda: 2 * m1 * k * delta,
        "half": lambda: m1 * k * (delta + coherence),
        "quarter": lambda: 0.5 * m1 * k * (delta + coherence),
        "radius": lambda: 2 * m1 * k * (delta / 2 + coherence / math.sqrt(n)),
        "zero": lambda: 0.0,
    }
    if rule not in rules:
        raise ValueError(f"unknown bias rule {rule!r}; choose one of {sorted(rules)}")
    return float(rules[rule]())


def data_bias(rule: str, data: SparseCodingData) -> float:
    """``bias_value`` for the parameters of ``data``."""
    return bias_value(rule, h=data.h, p=data.p, n=data.n, m1=data.m1, coherence=data.coherence)


def support_hypothesis_holds(h: int, p: float, coherence: float, a: float, b: float) -> bool:
    """Theorem 2.3.1's requirement a > (b + 2 m1)(delta + mu/sqrt(n)) k / (1 - delta) (proof, Sec. 2.4),
    with delta = h^(-2p) and k = h^p: it guarantees every on-support unit fires."""
    m1, delta = (a + b) / 2.0, delta_radius(h, p)
    return bool(delta < 1.0 and a > (b + 2 * m1) * (delta + coherence) * h**p / (1.0 - delta))


def support_recovery_bound(h: int, p: float, m1: float, a: float, b: float) -> float:
    """Theorem 2.3.1's probability bound 1 - exp(-2 h^p m1^2 / (b - a)^2)."""
    return 1.0 - math.exp(-2.0 * h**p * m1**2 / (b - a) ** 2)
