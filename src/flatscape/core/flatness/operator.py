"""The curvature operator A = S H S whose spectrum the flatness measures read (thesis Sec. 3.3-3.4).

For the Riemannian metric g (``symmetry``), G^{-1} H is self-adjoint in g and has the
spectrum of the symmetric A = S H S with S = G^{-1/2} = diag(||W_i|| I), acting on
u = S^{-1} xi (so ||xi||_g = ||u||_2); for the Euclidean metric S = I and A = H.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import nn

from flatscape.core.flatness.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_METRIC,
    DEFAULT_REUSE_GRAPH,
    METRICS,
    SOLVER_DTYPE,
)
from flatscape.core.flatness.hessian import Batch, Data, LossFn, LossHessian, as_batches
from flatscape.core.flatness.symmetry import block_norms


class CurvatureOperator:
    """u -> A u = S H S u for the Hessian H of the mean loss over all samples in ``data``.

    ``metric="riemannian"``: S = G^{-1/2}, ||p_i|| on the entries of block i (weights
    first, then biases, then any other trainable tensor: ``parameter_blocks``), so A is the same matrix at every point of
    a T_lambda equivalence class; ``metric="euclidean"``: S = I. A block of norm zero
    (e.g. zero-initialised biases) lies outside the quotient manifold (which needs
    W_i != 0); S takes the limit of the metric there: its rows and columns of A vanish.

    ``matvec`` takes and returns flat vectors of length ``shape[0]`` in float64
    (``SOLVER_DTYPE``) on ``device``, whatever ``dtype`` the HVPs run in; ``num_hvp``
    counts its calls and ``on_hvp`` (if given, e.g. a progress bar's ``update``) is
    called after each, here and in every ``variant``. ``to_scipy()`` wraps it for SciPy (``eigsh`` and friends).
    ``data``, ``batch_size``, ``dtype`` and ``reuse_graph`` are those of ``LossHessian``:
    the loss is accumulated exactly over micro-batches, the first-order graphs are kept
    when they fit in memory and built only at the first product, and the model is used
    in eval mode and never modified.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Data,
        *,
        metric: str = DEFAULT_METRIC,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        dtype: torch.dtype | None = DEFAULT_DTYPE,
        reuse_graph: bool | None = DEFAULT_REUSE_GRAPH,
        on_hvp: Callable[[], object] | None = None,
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.metric = metric
        self.data: list[Batch] = as_batches(data)  # a generator would be spent by the first operator
        self.batch_size = batch_size
        self._reuse_request = reuse_graph
        self.hessian = LossHessian(model, loss_fn, self.data, batch_size=batch_size, dtype=dtype, reuse_graph=reuse_graph)
        size = sum(p.numel() for p in self.hessian.params)
        self.shape = (size, size)
        self.num_hvp = 0
        self.on_hvp = on_hvp
        self._scales = None
        if metric == "riemannian":
            norms = block_norms(self.hessian.params)
            self._scales = torch.cat(
                [torch.full((p.numel(),), n, device=self.device, dtype=SOLVER_DTYPE) for p, n in zip(self.hessian.params, norms)]
            )

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model is evaluated in (the ``dtype`` argument, else the parameters')."""
        return self.hessian.dtype

    @property
    def device(self) -> torch.device:
        return self.hessian.device

    @property
    def names(self) -> list[str]:
        """Block names in the order of the flat vectors' segments."""
        return self.hessian.names

    @property
    def scales(self) -> torch.Tensor | None:
        """The diagonal of S as a flat float64 vector (||W_i|| on block i); None for the Euclidean metric."""
        return self._scales

    @property
    def loss(self) -> float:
        """The mean loss over all samples at the point."""
        return self.hessian.loss

    @property
    def reuse_graph(self) -> bool:
        return self.hessian.reuse_graph

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        """A u = S H S u; only the HVP runs in ``dtype``, the scaling in float64."""
        self.num_hvp += 1
        u = u.to(self.device)
        v = u if self._scales is None else self._scales * u
        h = self.hessian
        hv = h.flatten(h.hvp(h.unflatten(v.to(h.dtype)))).to(SOLVER_DTYPE)
        if self.on_hvp is not None:
            self.on_hvp()
        return hv if self._scales is None else self._scales * hv

    def to_scipy(self) -> LinearOperator:
        """A as a ``scipy.sparse.linalg.LinearOperator`` on float64 NumPy vectors (A is symmetric)."""

        def apply(x: np.ndarray) -> np.ndarray:
            u = torch.tensor(np.asarray(x, dtype=np.float64).reshape(-1), dtype=SOLVER_DTYPE)
            return self.matvec(u).cpu().numpy()

        return LinearOperator(self.shape, matvec=apply, rmatvec=apply, dtype=np.float64)

    def tangent(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tangent vector xi = S u of u, as blocks in ``dtype`` keyed by parameter name.

        ||xi||_g = ||u||_2 for the Riemannian metric, so a unit u gives a unit g-vector.
        """
        xi = (u if self._scales is None else self._scales * u).to(self.dtype)
        return {name: b.detach() for name, b in zip(self.names, self.hessian.unflatten(xi))}

    def variant(self, *, data: Data | None = None, dtype: torch.dtype | None = None) -> CurvatureOperator:
        """The same operator (model, loss, metric, micro-batching) on other samples and/or in another dtype."""
        return CurvatureOperator(
            self.hessian.model,
            self.hessian.loss_fn,
            self.data if data is None else data,
            metric=self.metric,
            batch_size=self.batch_size,
            dtype=dtype or self.dtype,
            reuse_graph=self._reuse_request,
            on_hvp=self.on_hvp,
        )
