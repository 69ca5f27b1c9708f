"""The autoencoder's loss (2.2) and its closed-form gradient, dense and sparse.

Every function takes ``weights`` W of shape (..., h, n) (leading dims batch independent
points), the signals Y (n, N) and a bias eps (a scalar or an (h,) vector). The sparse
path touches only the active (unit, signal) pairs W_i y_s > eps_i; it is exact, and far
cheaper in the regime of Theorem 2.3.1, where about k/h of the units fire.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from flatscape.ch2.model import SparseCodingData

# torch flags every CSR tensor as beta; the layouts built here are sorted and valid.
_CSR_BETA = "Sparse CSR tensor support is in beta"


def bias_column(eps: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """eps as a tensor that broadcasts against (..., h, N): an (h,) bias becomes a column."""
    eps = torch.as_tensor(eps, dtype=like.dtype, device=like.device)
    return eps.unsqueeze(-1) if eps.ndim >= 1 else eps


def hidden_preactivation(weights: torch.Tensor, signals: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """W y - eps for every signal: (..., h, N). ``eps`` is a scalar or an (h,) vector."""
    return weights @ signals - bias_column(eps, weights)


def autoencoder_loss(weights: torch.Tensor, signals: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """L(W) = (1/N) sum_s 1/2 || W^T ReLU(W y_s - eps) - y_s ||^2 (eqs. 2.1-2.2); batched over W's leading dims."""
    hidden = torch.relu(hidden_preactivation(weights, signals, eps))
    residual = weights.transpose(-1, -2) @ hidden - signals
    return 0.5 * residual.square().sum(dim=(-2, -1)) / signals.shape[-1]


def loss_and_gradient(
    weights: torch.Tensor,
    signals: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    method: str = "auto",
    sparse_below: float = 0.02,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss (2.2) and its gradient with respect to every column W_i of W^T, in closed form.

    Sec. 2.5 / 2.9.1: with r = ReLU(W y - eps), f = W^T r - y and Th(z) = 1_{z > 0},

        dL/dW_i = Th(W_i^T y - eps_i) [(W_i^T y - eps_i) I + y W_i^T] f = r_i f + Th_i (W_i^T f) y,

    averaged over the N signals. Stacked over i this is the (h x n) matrix
    G = (R F^T + (Th o (W F)) Y^T) / N: no loop over columns or signals.

    Returns the loss (...) and G (..., h, n). ``method="dense"`` uses five matrix
    products; ``"sparse"`` touches only the active (i, s) pairs after the first product;
    ``"auto"`` picks sparse when the active fraction is below ``sparse_below``.
    """
    product = weights @ signals  # W Y, the one product every path needs
    return gradient_from_product(weights, signals, product, eps, method=method, sparse_below=sparse_below, inplace=True)


def gradient_from_product(
    weights: torch.Tensor,
    signals: torch.Tensor,
    product: torch.Tensor,
    eps: float | torch.Tensor,
    *,
    method: str = "auto",
    sparse_below: float = 0.02,
    inplace: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``loss_and_gradient`` given ``product = W Y``; with ``inplace=True`` the dense path overwrites it."""
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"method must be 'auto', 'dense' or 'sparse', got {method!r}")
    bias = bias_column(eps, weights)
    active = product > bias
    if method == "auto":
        method = "sparse" if int(torch.count_nonzero(active)) < sparse_below * active.numel() else "dense"
    if method == "sparse":
        return sparse_loss_and_gradient(weights, signals, ActivePairs.from_mask(product, active, bias))
    hidden = (product.sub_(bias) if inplace else product - bias).clamp_min_(0.0)  # R
    del active
    return dense_from_hidden(weights, signals, hidden)


def dense_from_hidden(weights: torch.Tensor, signals: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The five-product closed form from R = ReLU(W Y - eps)."""
    residual = weights.transpose(-1, -2) @ hidden - signals  # F, (..., n, N)
    num_signals = signals.shape[-1]
    loss = 0.5 * residual.square().sum(dim=(-2, -1)) / num_signals
    back = (weights @ residual).mul_(hidden > 0)  # Th o (W F), in place to spare an (h, N) buffer
    grad = hidden @ residual.transpose(-1, -2)
    grad = grad.add_(back @ signals.T).div_(num_signals)
    return loss, grad


@dataclass(frozen=True)
class ActivePairs:
    """The active (unit, signal) pairs of a batch of points: W_i y_s > eps_i.

    ``unit`` is the flat row b * h + i of point b's unit i, ``signal`` is s, ``raw`` is
    W_i y_s and ``value`` is r_is = W_i y_s - eps_i > 0. Pairs are in row-major order
    (sorted by unit, then signal), which the CSR products below rely on.
    """

    unit: torch.Tensor
    signal: torch.Tensor
    raw: torch.Tensor
    value: torch.Tensor
    batch: int
    h: int
    num_signals: int

    @classmethod
    def from_mask(cls, product: torch.Tensor, active: torch.Tensor, bias: torch.Tensor) -> "ActivePairs":
        h, num_signals = product.shape[-2:]
        batch = math.prod(product.shape[:-2])
        unit, signal = active.reshape(batch * h, num_signals).nonzero(as_tuple=True)
        raw = product.reshape(batch * h, num_signals)[unit, signal]
        return cls(unit, signal, raw, raw - _unit_bias(bias, unit, h), batch, h, num_signals)

    def restrict(self, bias: torch.Tensor) -> "ActivePairs":
        """The pairs still active under a larger bias (a subset: no pass over W Y needed)."""
        unit_bias = _unit_bias(bias, self.unit, self.h)
        keep = self.raw > unit_bias
        unit, signal, raw = self.unit[keep], self.signal[keep], self.raw[keep]
        return ActivePairs(unit, signal, raw, raw - unit_bias[keep] if unit_bias.ndim else raw - unit_bias, self.batch, self.h, self.num_signals)

    @property
    def slot(self) -> torch.Tensor:
        """b * N + s: the (point, signal) row each pair writes to."""
        return torch.div(self.unit, self.h, rounding_mode="floor") * self.num_signals + self.signal

    def matrix(self, values: torch.Tensor) -> torch.Tensor:
        """A sparse CSR (B h) x (B N) matrix with ``values`` at the pairs (R when values = r)."""
        counts = torch.bincount(self.unit, minlength=self.batch * self.h)
        crow = torch.zeros(self.batch * self.h + 1, dtype=torch.int64, device=self.unit.device)
        crow[1:] = counts.cumsum(0)
        shape = (self.batch * self.h, self.batch * self.num_signals)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CSR_BETA)
            return torch.sparse_csr_tensor(crow, self.slot, values, shape, check_invariants=False)

    def support_counts(self, support: torch.Tensor) -> tuple[int, int, int]:
        """(#active on-support pairs, #active off-support pairs, #signals whose active set is their support)."""
        i = torch.remainder(self.unit, self.h)
        on_pair = (support[self.signal] == i.unsqueeze(1)).any(dim=1)
        slots = self.batch * self.num_signals
        total = torch.bincount(self.slot, minlength=slots)
        on = torch.bincount(self.slot, weights=on_pair.to(torch.float64), minlength=slots).round().to(torch.int64)
        exact = (on == support.shape[1]) & (total == on)
        return int(on.sum()), int((total - on).sum()), int(exact.sum())


def _unit_bias(bias: torch.Tensor, unit: torch.Tensor, h: int) -> torch.Tensor:
    """eps_i for every pair (a scalar bias stays a scalar)."""
    if bias.ndim == 0:
        return bias
    return bias.reshape(-1)[torch.remainder(unit, h)] if bias.numel() == h else bias.reshape(-1)[unit]


def dense_support_counts(active: torch.Tensor, support: torch.Tensor) -> tuple[int, int, int]:
    """``ActivePairs.support_counts`` from a dense (B, h, N) activity mask."""
    batch, _, num_signals = active.shape
    index = support.T.unsqueeze(0).expand(batch, -1, -1)  # (B, k, N)
    on = active.gather(1, index).sum(dim=1)  # (B, N) active units inside the support
    off = torch.count_nonzero(active, dim=1) - on
    exact = (on == support.shape[1]) & (off == 0)
    return int(on.sum()), int(off.sum()), int(exact.sum())


def sparse_loss_and_gradient(
    weights: torch.Tensor, signals: torch.Tensor, pairs: ActivePairs
) -> tuple[torch.Tensor, torch.Tensor]:
    """``loss_and_gradient`` from the active pairs only: R is a sparse matrix, so
    F = R^T W - Y, R F^T and (Th o W F) Y^T cost O(nnz n) after the product W Y."""
    batch_shape, (h, n) = weights.shape[:-2], weights.shape[-2:]
    num_signals, batch = signals.shape[-1], pairs.batch
    rows = weights.reshape(batch * h, n)
    signals_rep = signals.T.repeat(batch, 1)  # (B N, n): y_s for every (point, signal)
    if pairs.unit.numel() == 0:
        loss = 0.5 * signals.square().sum() / num_signals
        return loss.expand(batch_shape).clone(), torch.zeros_like(weights)
    hidden = pairs.matrix(pairs.value)
    residual = hidden.t() @ rows - signals_rep  # f_s = sum_i r_is W_i - y_s, per (point, signal)
    loss = 0.5 * residual.square().sum(dim=1).reshape(batch, num_signals).sum(dim=1) / num_signals
    along = (rows[pairs.unit] * residual[pairs.slot]).sum(dim=1)  # W_i^T f_s at the active pairs
    grad = hidden @ residual + pairs.matrix(along) @ signals_rep
    return loss.reshape(batch_shape), grad.div_(num_signals).reshape(*batch_shape, h, n)


def candidate_pairs(data: SparseCodingData, radius: float, eps: float, *, limit: float) -> torch.Tensor | None:
    """A sparse CSR (h x N) pattern of the (unit, signal) pairs that can fire at some
    point within ``radius`` of A*, or None when they exceed a ``limit`` share of all
    pairs (then the full product W Y is cheaper).

    Cauchy-Schwarz: W_i y_s >= eps needs <A*_i, y_s> >= eps - radius ||y_s||; a small
    margin keeps pairs that rounding could tip over the threshold.
    """
    if limit <= 0:
        return None
    centre = data.dictionary.T @ data.signals  # (h, N)
    reach = radius * data.signals.norm(dim=0)
    margin = 1e-4 * (abs(eps) + reach + centre.abs().amax(dim=0) + 1.0)
    possible = centre > (eps - reach - margin)
    if int(torch.count_nonzero(possible)) > limit * possible.numel():
        return None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CSR_BETA)
        return possible.to(data.signals.dtype).to_sparse_csr()


def pairs_at_candidates(weights: torch.Tensor, signals: torch.Tensor, pattern: torch.Tensor, bias: torch.Tensor) -> ActivePairs:
    """``ActivePairs`` for a batch of points, evaluating W_i y_s only at the candidate
    pattern (a sampled dense-dense product, O(K n) per point instead of O(h N n))."""
    batch, h, _ = weights.shape
    crow, col = pattern.crow_indices(), pattern.col_indices()
    unit = torch.repeat_interleave(torch.arange(h, device=crow.device), crow[1:] - crow[:-1])
    units, signals_idx, raws = [], [], []
    for b in range(batch):
        raw = torch.sparse.sampled_addmm(pattern, weights[b], signals, beta=0.0).values()  # W_i y_s at the pattern
        keep = raw > _unit_bias(bias, unit, h)
        units.append(unit[keep] + b * h)
        signals_idx.append(col[keep])
        raws.append(raw[keep])
    flat_unit, signal, raw = torch.cat(units), torch.cat(signals_idx), torch.cat(raws)
    return ActivePairs(flat_unit, signal, raw, raw - _unit_bias(bias, flat_unit, h), batch, h, signals.shape[-1])


def points_per_batch(h: int, num_signals: int, max_elements: int) -> int:
    """How many points' (h, N) blocks fit in ``max_elements`` (at least one)."""
    return max(1, max_elements // (h * num_signals))


def column_norms(grad: torch.Tensor) -> torch.Tensor:
    """||G_i|| for every column W_i of W^T (rows of G): (..., h)."""
    return grad.norm(dim=-1)


def columnwise_distance(weights: torch.Tensor, dictionary: torch.Tensor) -> torch.Tensor:
    """Average columnwise distance mean_i ||W_i - A*_i|| between W^T and A*."""
    return (weights - dictionary.T).norm(dim=-1).mean(dim=-1)
