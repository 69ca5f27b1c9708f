"""What the field's generalization measures share: their result, their defaults, the checks of
their settings and the perturbed point of a network's parameters (``flatscape.core.flatness.generalization``
and ``flatscape.core.flatness.pac_bayes`` hold the measures)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call

from flatscape.core.flatness.batches import Data, LossFn, as_batches, micro_batches
from flatscape.core.flatness.hessian import evaluation_mode
from flatscape.core.flatness.symmetry import parameter_blocks

log = logging.getLogger(__name__)

GENERALIZATION_MEASURES = (
    "relative_flatness",
    "adaptive_sharpness",
    "adaptive_sharpness_avg",
    "pac_bayes_flatness",
    "pac_bayes_mag_flatness",
    "fisher_rao_norm",
    "riemannian_trace",
)
"""Every measure of this module, by the name the CLI (``--measure``) and the ranking table use."""

PAC_BAYES_CRITERIA = ("error", "loss")
DEFAULT_RHO = 0.5
DEFAULT_AVERAGE_RHO = 0.05
DEFAULT_STEPS = 10
DEFAULT_SAMPLES = 10
DEFAULT_PAC_BAYES_BOUND = 0.1
DEFAULT_PAC_BAYES_STEPS = 15
DEFAULT_PAC_BAYES_EPS = 1e-3
DEFAULT_TRACE_PROBES = 50
DEFAULT_TRACE_TOL = 5e-2


@dataclass(frozen=True)
class MeasureResult:
    """One measure's value at a point, the mean loss there, and what else the measure found
    (``info``: e.g. the sigma of a PAC-Bayes measure, the perturbed loss of a sharpness)."""

    name: str
    value: float
    loss: float
    info: dict = field(default_factory=dict)


def _positive(name: str, value, *, integer: bool = False):
    """``value`` if it is a positive (integer) number, else ``ValueError`` naming ``name``."""
    if integer:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


class _Point:
    """The mean loss (and 0-1 error, gradient) over all samples at any parameter vector.

    The parameters are the model's ``parameter_blocks`` as detached copies; a point is a
    list of tensors in that order. Buffers (batch-norm running statistics) stay fixed.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data: Data, batch_size: int | None) -> None:
        blocks = parameter_blocks(model)
        if not blocks:
            raise ValueError("the model has no trainable parameters")
        self.model = model
        self.loss_fn = loss_fn
        self.names = [name for name, _ in blocks]
        self.params = [p.detach().clone() for _, p in blocks]
        self.buffers = dict(model.named_buffers())
        self.device = self.params[0].device
        self.dtype = self.params[0].dtype
        self.batches = micro_batches(as_batches(data), batch_size)
        self.num_samples = sum(len(x) for x, _ in self.batches)
        if self.num_samples == 0:
            raise ValueError("data holds no samples")

    def _batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, self.dtype if x.is_floating_point() else None)
        y = y.to(self.device, self.dtype if y.is_floating_point() else None)
        return x, y

    def outputs(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        with evaluation_mode(self.model):
            return functional_call(self.model, dict(zip(self.names, params)) | self.buffers, (x,))

    @torch.no_grad()
    def loss(self, params: Sequence[torch.Tensor]) -> float:
        total = 0.0
        for x, y in self.batches:
            x, y = self._batch(x, y)
            total += float(self.loss_fn(self.outputs(params, x), y)) * len(x)
        return total / self.num_samples

    @torch.no_grad()
    def error(self, params: Sequence[torch.Tensor]) -> float:
        """The 0-1 training error (targets are class indices)."""
        wrong = 0
        for x, y in self.batches:
            x, y = self._batch(x, y)
            wrong += int((self.outputs(params, x).argmax(dim=1) != y).sum())
        return wrong / self.num_samples

    @torch.enable_grad()
    def loss_and_grad(self, params: Sequence[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        live = [p.detach().requires_grad_(True) for p in params]
        total, grads = 0.0, [torch.zeros_like(p) for p in live]
        for x, y in self.batches:
            x, y = self._batch(x, y)
            loss = self.loss_fn(self.outputs(live, x), y) * (len(x) / self.num_samples)
            for acc, g in zip(grads, torch.autograd.grad(loss, live, allow_unused=True)):
                if g is not None:
                    acc.add_(g)
            total += float(loss.detach())
        return total, grads

    def draw(self, gen: torch.Generator) -> list[torch.Tensor]:
        """A standard normal vector over the blocks (CPU float64 draw, so device independent)."""
        flat = torch.randn(sum(p.numel() for p in self.params), generator=gen, dtype=torch.float64)
        return [chunk.view_as(p).to(self.device, self.dtype) for chunk, p in zip(torch.split(flat, [p.numel() for p in self.params]), self.params)]


def _axpy(params: Sequence[torch.Tensor], scale: Sequence[torch.Tensor], u: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p + c * v for p, c, v in zip(params, scale, u)]


def _norm(blocks: Sequence[torch.Tensor]) -> float:
    return math.sqrt(sum(float(b.to(torch.float64).pow(2).sum()) for b in blocks))


