"""The parameter blocks, the metric g and the rescaling symmetry T_lambda (thesis Sec. 3.3-3.3.1)."""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn


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


def block_norms(blocks: Sequence[torch.Tensor]) -> list[float]:
    """||W_i|| of every block, the diagonal of S = G^{-1/2}.

    float64: a float32 norm of a million entries is off by ~1e-5 relative, which
    would break the exact rescaling S -> Lambda S between equivalent points.
    """
    return [float(p.detach().to(torch.float64).norm()) for p in blocks]


def metric_inner(model: nn.Module, eta: dict[str, torch.Tensor], xi: dict[str, torch.Tensor]) -> torch.Tensor:
    """g_W(eta, xi) = sum_i <eta_i, xi_i> / ||W_i||^2 (Prop. 3.3.6), at the model's parameters."""
    total = 0.0
    for name, p in parameter_blocks(model):
        inner = torch.sum(eta[name].to(torch.float64) * xi[name].to(torch.float64))
        total = total + inner / p.detach().to(torch.float64).norm() ** 2
    return total


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

