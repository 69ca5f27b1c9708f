"""Properties of the Chapter 3 networks (Tables 3.1 and 3.4, the authors' CIFAR-10 nets)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from landscapes.core.flatness import layers, rescale
from landscapes.core.models import MODEL_NAMES, build_model, describe_architecture


pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = [(1, 8), (1, 28), (3, 32)]


def random_lambdas(count: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    logs = rng.normal(0.0, 0.7, count)
    return [float(v) for v in np.exp(logs - logs.mean())]


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("channels, size", SHAPES)
def test_output_shape_for_small_mnist_and_cifar_inputs(name, channels, size):
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, image_size=size, num_classes=7).eval()
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_bias_flag_removes_every_bias(name):
    model = build_model(name, in_channels=1, image_size=8, bias=False)
    assert all(layer.bias is None for layer in layers(model))
    assert not any(n.endswith("bias") for n, _ in model.named_parameters())
    with_bias = build_model(name, in_channels=1, image_size=8, bias=True)
    assert all(layer.bias is not None for layer in layers(with_bias))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_rescale_preserves_function_in_eval_mode(name):
    torch.manual_seed(1)
    channels, size = (3, 32) if name in ("alexnet_cifar", "vgg16_cifar") else (1, 28)
    model = build_model(name, in_channels=channels, image_size=size).double().eval()
    with torch.no_grad():  # VGG16's biases start at zero; make them nonzero so the bias scaling is exercised
        for layer in layers(model):
            layer.bias.normal_(0.0, 0.01)
    scaled = rescale(model, random_lambdas(len(layers(model)), seed=3)).eval()
    x = torch.randn(3, channels, size, size, dtype=torch.float64)
    with torch.no_grad():
        reference, moved = model(x), scaled(x)
    assert torch.allclose(moved, reference, rtol=1e-10, atol=1e-12 * reference.abs().max().item())
    assert not any(torch.allclose(a.weight, b.weight) for a, b in zip(layers(model), layers(scaled)))


def test_table_3_1_architectures_on_28x28():
    f1 = [row["layer"] for row in describe_architecture(build_model("f1", in_channels=1, image_size=28))]
    c1 = [row["layer"] for row in describe_architecture(build_model("c1", in_channels=1, image_size=28))]
    assert f1 == ["FC(784, 300)", "FC(300, 100)", "FC(100, 10)"]
    assert c1 == ["conv(5, 5, 10)", "conv(5, 5, 20)", "FC(320, 120)", "FC(120, 84)", "FC(84, 10)"]


def test_describe_architecture_counts_parameters():
    model = build_model("lenet", in_channels=1, image_size=28)
    rows = describe_architecture(model)
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in model.parameters())
    assert rows[0]["shape"] == (6, 1, 5, 5) and rows[0]["bias"]
    assert [r["layer"] for r in rows][2:] == ["FC(256, 120)", "FC(120, 84)", "FC(84, 10)"]


def test_mnist_fc_is_five_hidden_layers_of_512():
    rows = describe_architecture(build_model("mnist_fc", in_channels=1, image_size=28, bias=False))
    assert [r["layer"] for r in rows] == ["FC(784, 512)"] + ["FC(512, 512)"] * 4 + ["FC(512, 10)"]


def test_alexnet_cifar_matches_authors_layout():
    rows = describe_architecture(build_model("alexnet_cifar", in_channels=3, image_size=32))
    assert [r["layer"] for r in rows] == ["conv(5, 5, 64)", "conv(5, 5, 64)", "FC(4096, 384)", "FC(384, 192)", "FC(192, 10)"]


def test_vgg16_cifar_layout_and_init():
    torch.manual_seed(0)
    model = build_model("vgg16_cifar", in_channels=3, image_size=32)
    rows = describe_architecture(model)
    convs = [r for r in rows if r["layer"].startswith("conv")]
    assert [r["shape"][0] for r in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert [r["layer"] for r in rows[-3:]] == ["FC(512, 512)", "FC(512, 240)", "FC(240, 10)"]
    assert sum(isinstance(m, nn.Dropout) for m in model.modules()) == 2
    conv = model[0]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / (9 * 64)), rel=0.1)
    fc = [m for m in model.modules() if isinstance(m, nn.Linear)][0]
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in layers(model))


def test_vgg16_dropout_active_only_in_train_mode():
    torch.manual_seed(0)
    model = build_model("vgg16_cifar", in_channels=1, image_size=8)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        model.train()
        assert not torch.equal(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", in_channels=1, image_size=28)
