"""Batch norm, layer norm and other trainable tensors as blocks of the metric (issue #16, part 1)."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn
from torch.func import functional_call

from flatscape.core.flatness import (
    CurvatureOperator,
    euclidean_spectral_norm,
    parameter_blocks,
    rescale_before_norm,
    rescale_norm_affine,
    riemannian_spectral_norm,
    spectral_norm,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CE = nn.functional.cross_entropy


def bn_convnet(seed: int = 0) -> nn.Module:
    """conv-BN-ReLU-conv-BN-ReLU-pool-linear with non-trivial running statistics and affine parameters."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 3), nn.LayerNorm(3),
    ).double()
    with torch.no_grad():
        for bn in (model[1], model[4]):
            bn.running_mean.normal_(0.0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0.0, 0.3)
        model[9].weight.uniform_(0.5, 1.5)
        model[9].bias.normal_(0.0, 0.3)
    return model


def tiny_images(n: int = 12, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)


def dense_operator(model: nn.Module, x: torch.Tensor, y: torch.Tensor, metric: str) -> torch.Tensor:
    """S H S from the full Hessian of the eval-mode loss over the blocks (the buffers held fixed)."""
    blocks = parameter_blocks(model)
    flat = torch.cat([p.detach().reshape(-1) for _, p in blocks])
    sizes = [p.numel() for _, p in blocks]
    model.eval()

    def loss(w):
        state = {name: chunk.view_as(p) for (name, p), chunk in zip(blocks, torch.split(w, sizes))}
        return CE(functional_call(model, state, (x,)), y)

    hessian = torch.autograd.functional.hessian(loss, flat)
    if metric == "euclidean":
        return hessian
    scale = torch.cat([torch.full((p.numel(),), float(p.detach().norm()), dtype=torch.float64) for _, p in blocks])
    return scale[:, None] * hessian * scale[None, :]


def test_blocks_of_a_batch_norm_network_follow_the_documented_order():
    names = [name for name, _ in parameter_blocks(bn_convnet())]
    assert names == [
        "0.weight", "3.weight", "8.weight", "0.bias", "3.bias", "8.bias",
        "1.weight", "1.bias", "4.weight", "4.bias", "9.weight", "9.bias",
    ]


@pytest.mark.parametrize("metric", ["riemannian", "euclidean"])
def test_operator_matches_dense_oracle_with_batch_and_layer_norm(metric):
    model = bn_convnet()
    x, y = tiny_images()
    model.train()  # the measure must switch to eval mode itself
    dense = dense_operator(model, x, y, metric)
    model.train()
    op = CurvatureOperator(model, CE, (x, y), metric=metric, batch_size=5)
    gen = torch.Generator().manual_seed(4)
    u = torch.randn(op.shape[0], generator=gen, dtype=torch.float64)
    assert torch.allclose(op.matvec(u), dense @ u, rtol=1e-10, atol=1e-12)
    value = spectral_norm(op, tol=1e-12).value
    assert value == pytest.approx(torch.linalg.eigvalsh(dense)[-1].item(), rel=1e-10)
    assert model.training  # left as it was


def test_rescale_before_norm_keeps_the_function_and_moves_the_buffers():
    model = bn_convnet().eval()
    x, _ = tiny_images()
    moved = rescale_before_norm(model, "3", "4", 3.7).eval()
    assert torch.allclose(model(x), moved(x), rtol=1e-12, atol=1e-12)
    assert torch.allclose(moved[3].weight, 3.7 * model[3].weight) and torch.allclose(moved[3].bias, 3.7 * model[3].bias)
    assert torch.allclose(moved[4].running_mean, 3.7 * model[4].running_mean)
    eps = model[4].eps
    assert torch.allclose(moved[4].running_var + eps, 3.7**2 * (model[4].running_var + eps))
    # Scaling the variance by c^2 alone (ignoring eps) is not a symmetry: the check above can fail.
    naive = rescale_before_norm(model, "3", "4", 3.7)
    with torch.no_grad():
        naive[4].running_var.copy_(3.7**2 * model[4].running_var)
    assert not torch.allclose(model(x), naive.eval()(x), rtol=1e-9, atol=0)


def test_rescale_norm_affine_keeps_the_function():
    model = bn_convnet().eval()
    x, _ = tiny_images()
    moved = rescale_norm_affine(model, "1", "3", 0.3).eval()
    assert torch.allclose(model(x), moved(x), rtol=1e-12, atol=1e-12)
    assert torch.allclose(moved[1].weight, 0.3 * model[1].weight) and torch.allclose(moved[3].weight, model[3].weight / 0.3)
    assert torch.equal(moved[3].bias, model[3].bias)


@pytest.mark.parametrize(
    "symmetry",
    [
        lambda m: rescale_before_norm(m, "0", "1", 4.3),
        lambda m: rescale_before_norm(rescale_before_norm(m, "3", "4", 0.35), "0", "1", 2.2),
        lambda m: rescale_norm_affine(m, "1", "3", 0.2),
        lambda m: rescale_norm_affine(m, "4", "8", 5.5),
        lambda m: rescale_norm_affine(rescale_before_norm(m, "3", "4", 3.1), "4", "8", 0.4),
    ],
    ids=["before-bn1", "before-both", "affine-bn1", "affine-bn2", "both-kinds"],
)
def test_riemannian_value_invariant_under_batch_norm_symmetries_euclidean_not(symmetry):
    model = bn_convnet()
    data = tiny_images()
    moved = symmetry(model)
    base = riemannian_spectral_norm(model, CE, data, tol=1e-12)
    other = riemannian_spectral_norm(moved, CE, data, tol=1e-12)
    assert base.converged and other.converged
    assert abs(base.value - other.value) / base.value < 1e-10
    assert other.loss == pytest.approx(base.loss, rel=1e-12)
    euc_base = euclidean_spectral_norm(model, CE, data, tol=1e-12).value
    euc_moved = euclidean_spectral_norm(moved, CE, data, tol=1e-12).value
    assert abs(euc_base - euc_moved) / euc_base > 1e-2


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: rescale_before_norm(m, "3", "1", 2.0), "3 outputs but '1' normalises 3|has 4 outputs"),
        (lambda m: rescale_before_norm(m, "3", "2", 2.0), "is a ReLU, not a batch norm"),
        (lambda m: rescale_before_norm(m, "7", "4", 2.0), "is a Flatten, not a Linear/Conv layer"),
        (lambda m: rescale_before_norm(m, "3", "4", -1.0), "positive and finite"),
        (lambda m: rescale_before_norm(m, "3", "4", 1e-3), "too small"),
        (lambda m: rescale_norm_affine(m, "nope", "3", 2.0), "no module 'nope'"),
        (lambda m: rescale_norm_affine(m, "1", "3", math.inf), "positive and finite"),
    ],
)
def test_norm_symmetries_reject_bad_requests(call, message):
    with pytest.raises(ValueError, match=message):
        call(bn_convnet())


def test_batch_norm_without_running_statistics_is_rejected_before_any_product():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, track_running_stats=False), nn.Linear(3, 2)).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="'1' keeps no running statistics"):
        CurvatureOperator(model, CE, (x, torch.zeros(6, dtype=torch.long)))


def test_torchvision_resnet18_gives_a_converged_finite_value():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    result = riemannian_spectral_norm(model, CE, (x, y), tol=1e-2, max_hvp=40)
    assert result.converged and math.isfinite(result.value) and result.value > 0
    assert len(result.eigenvector) == 62  # 21 conv/linear weights, the fc bias, 20 batch norms x 2
    assert "bn1.weight" in result.eigenvector and "layer4.1.bn2.bias" in result.eigenvector
