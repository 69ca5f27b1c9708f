"""The parameter blocks, the metric g and the function-preserving rescalings (thesis Sec. 3.3-3.3.1).

Blocks. Every trainable parameter tensor is a block: first the weights of the
Linear/Conv layers, then their biases (the authors' order, so the thesis networks'
blocks, and values, are unchanged), then every other trainable tensor (batch- and
layer-norm affine weights and biases, embeddings, ...) in ``named_parameters()``
order. The metric of Sec. 3.3 extends to all of them with the same rule,
g(eta, xi) = sum_i <eta_i, xi_i> / ||p_i||^2, and the same A = S H S with
S = diag(||p_i|| I).

Why the value is invariant. Let T scale each block by a positive scalar,
p_i -> c_i p_i (Lambda = diag(c_i I)), and let the loss satisfy L(T p) = L(p) for
*every* p near the point (T is a symmetry of the function, not only of its value at
one point). Differentiating twice, H(T p) = Lambda^{-1} H(p) Lambda^{-1}; the block
norms give S(T p) = Lambda S(p); so A(T p) = S H S is the same matrix, and so are
its eigenvalues, trace, density and per-block norms. T_lambda of Sec. 3.3.1 is one
such T; a network with batch norm has two more.

Measurement is in eval mode: batch norm uses its running statistics (mu, sigma^2),
fixed buffers, so y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta is an affine map
of x and the loss a sum over samples (a batch norm without running statistics is
rejected by ``LossHessian``). In train mode batch statistics would couple the samples
and the value would depend on the batch split.

(i) A layer before a batch norm (``rescale_before_norm``). Scale the layer's weight
and bias by c: its output becomes c x. Set mu' = c mu and sigma'^2 = c^2 (sigma^2 +
eps) - eps, so that sqrt(sigma'^2 + eps) = c sqrt(sigma^2 + eps); then
(c x - mu') / sqrt(sigma'^2 + eps) = (x - mu) / sqrt(sigma^2 + eps) for every x and
every weight, so L(T p) = L(p) on a neighbourhood: the buffers are part of the point,
not of the parameters, and transform with it. (Scaling the variance by c^2 alone
would be exact only for eps = 0.)

(ii) A batch norm's affine parameters (``rescale_norm_affine``). Scale gamma and beta
by c: the output becomes c y. If y reaches the next Linear/Conv layer only through
positively homogeneous maps (ReLU, max- or average-pooling, flattening), dividing
that layer's weight by c restores its input exactly (its bias is unchanged). In a
residual network this holds for a batch norm inside a block (bn1 -> ReLU -> conv2),
not for one whose output joins the skip connection.

Both are block scalings that leave the function unchanged, so the Riemannian value
is invariant under them while the Euclidean one moves. Layer norm has symmetry (ii)
but not an exact (i) (its statistics are computed per sample, not stored).
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parameter import UninitializedParameter


def layers(model: nn.Module) -> list[nn.Module]:
    """The network's Linear/Conv layers in registration (= forward, for our chains) order."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]


def parameter_blocks(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every block: Linear/Conv weights, their biases, then the rest.

    The first two groups are the authors' order (and hold every Linear/Conv parameter,
    as before); the third holds every other parameter with ``requires_grad`` in
    ``named_parameters()`` order (batch-norm and layer-norm affine parameters,
    embeddings, ...): the metric of Sec. 3.3 applies to each as a block. A parameter
    the measure cannot handle (not yet initialised, complex, empty) is rejected with
    its name.
    """
    owner = {id(p): name for name, p in model.named_parameters()}
    weights, biases, covered = [], [], set()
    for layer in layers(model):
        for kind, bucket in (("weight", weights), ("bias", biases)):
            p = getattr(layer, kind, None)
            if p is not None and id(p) not in covered:
                covered.add(id(p))
                bucket.append((owner[id(p)], p))
    others = [(name, p) for name, p in model.named_parameters() if id(p) not in covered and p.requires_grad]
    for name, p in weights + biases + others:
        if isinstance(p, UninitializedParameter):
            raise ValueError(f"unsupported parameter {name}: not initialised (run one forward pass of the lazy module first)")
        if not p.is_floating_point():
            raise ValueError(f"unsupported parameter {name}: dtype {p.dtype} is not a real floating type")
        if p.numel() == 0:
            raise ValueError(f"unsupported parameter {name}: it is empty")
    return weights + biases + others


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
    average-pooling, dropout in eval mode), e.g. every model in ``flatscape.core.models``.
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



def _factor(factor: float) -> float:
    factor = float(factor)
    if not factor > 0 or not math.isfinite(factor):
        raise ValueError(f"the factor must be positive and finite, got {factor}")
    return factor


def _module(model: nn.Module, name: str, kinds: tuple[type, ...], what: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        raise ValueError(f"the model has no module {name!r}")
    if not isinstance(modules[name], kinds):
        raise ValueError(f"module {name!r} is a {type(modules[name]).__name__}, not {what}")
    return modules[name]


def _out_features(layer: nn.Module) -> int:
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def rescale_before_norm(model: nn.Module, layer: str, norm: str, factor: float) -> nn.Module:
    """Symmetry (i) of the module docstring: a copy with ``layer``'s weight and bias times c,
    and the running statistics of the batch norm ``norm`` that normalises its output moved
    with them (mu -> c mu, sigma^2 + eps -> c^2 (sigma^2 + eps)).

    In eval mode the copy computes the same function as ``model`` when ``norm`` reads
    ``layer``'s output directly; the Riemannian value is the same, the Euclidean one not.
    """
    c = _factor(factor)
    scaled = copy.deepcopy(model)
    lin = _module(scaled, layer, (nn.Linear, nn.modules.conv._ConvNd), "a Linear/Conv layer")
    bn = _module(scaled, norm, (_BatchNorm,), "a batch norm")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"batch norm {norm!r} keeps no running statistics: there is nothing to move with the layer")
    if _out_features(lin) != bn.num_features:
        raise ValueError(f"{layer!r} has {_out_features(lin)} outputs but {norm!r} normalises {bn.num_features}")
    with torch.no_grad():
        lin.weight.mul_(c)
        if lin.bias is not None:
            lin.bias.mul_(c)
        bn.running_mean.mul_(c)
        # sigma'^2 = c^2 (sigma^2 + eps) - eps keeps eps exact; computed in float64 so c = 1 is the identity
        var = bn.running_var.to(torch.float64)
        bn.running_var.copy_(c * c * (var + bn.eps) - bn.eps)
    if (bn.running_var < 0).any():
        raise ValueError(f"factor {c} is too small: the running variance of {norm!r} would be negative")
    return scaled


def rescale_norm_affine(model: nn.Module, norm: str, layer: str, factor: float) -> nn.Module:
    """Symmetry (ii) of the module docstring: a copy with the affine weight and bias of the
    batch or layer norm ``norm`` times c and the weight of the next layer ``layer`` divided by c.

    The function is unchanged when ``norm``'s output reaches ``layer``, and nothing
    else, through positively homogeneous maps (ReLU, pooling, flattening).
    """
    c = _factor(factor)
    scaled = copy.deepcopy(model)
    bn = _module(scaled, norm, (_BatchNorm, nn.LayerNorm, nn.GroupNorm), "a batch, layer or group norm")
    lin = _module(scaled, layer, (nn.Linear, nn.modules.conv._ConvNd), "a Linear/Conv layer")
    if getattr(bn, "weight", None) is None:
        raise ValueError(f"{norm!r} has no affine parameters to scale")
    with torch.no_grad():
        bn.weight.mul_(c)
        if bn.bias is not None:
            bn.bias.mul_(c)
        lin.weight.div_(c)
    return scaled
