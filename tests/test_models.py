"""Properties of the registry's networks: Chapter 3's (Tables 3.1 and 3.4, the authors' CIFAR-10 nets),
Chapter 4's VGG classifiers, ResNet-18 and the Recon baselines' autoencoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from flatscape.core.flatness import layers, rescale
from flatscape.core.models import MODEL_NAMES, build_model, describe_architecture


pytestmark = pytest.mark.usefixtures("one_thread")

SHAPES = [(1, 8), (1, 28), (3, 32)]
# Chains of Linear/Conv layers with ReLU and max-pooling: what the rescaling of Sec. 3.3.1 needs.
CHAPTER_3 = ("f1", "c1", "mnist_fc", "lenet", "alexnet_cifar", "vgg16_cifar")


def random_lambdas(count: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    logs = rng.normal(0.0, 0.7, count)
    return [float(v) for v in np.exp(logs - logs.mean())]


def test_registry_holds_every_chapter_s_networks():
    assert set(MODEL_NAMES) == {*CHAPTER_3, "vgg11", "vgg16", "resnet18", "autoencoder"}


@pytest.mark.parametrize("name", CHAPTER_3 + ("vgg11", "vgg16"))
@pytest.mark.parametrize("channels, size", SHAPES)
def test_output_shape_for_small_mnist_and_cifar_inputs(name, channels, size):
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, image_size=size, num_classes=7).eval()
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)


@pytest.mark.parametrize("name", CHAPTER_3)
def test_bias_flag_removes_every_bias(name):
    model = build_model(name, in_channels=1, image_size=8, bias=False)
    assert all(layer.bias is None for layer in layers(model))
    assert not any(n.endswith("bias") for n, _ in model.named_parameters())
    with_bias = build_model(name, in_channels=1, image_size=8, bias=True)
    assert all(layer.bias is not None for layer in layers(with_bias))


@pytest.mark.parametrize("name", CHAPTER_3)
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


# ---- Chapter 4 ----------------------------------------------------------------------------

VGG16_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


@pytest.mark.parametrize("batch_norm", [True, False])
def test_chapter_4_vgg16_with_and_without_batch_norm(batch_norm):
    model = build_model("vgg16", in_channels=3, image_size=32, num_classes=10, width=64, batch_norm=batch_norm)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == VGG16_CHANNELS
    assert all((c.bias is None) == batch_norm for c in convs)  # batch norm carries the shift
    norms = [m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms == (VGG16_CHANNELS if batch_norm else [])
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 5
    assert [tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Linear)] == [(10, 512)]


def test_chapter_4_vgg_pools_only_down_to_one_pixel():
    # 8x8 digits: three pools reach 1x1, the other two are left out
    model = build_model("vgg16", in_channels=1, image_size=8, num_classes=10, width=4, batch_norm=True)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3


@pytest.mark.parametrize("batch_norm", [True, False])
def test_chapter_4_vgg11_has_the_parameters_of_the_former_build_vgg(batch_norm):
    """The parameter names and shapes of Chapter 4a's former ``build_vgg("vgg11", width=2)`` on 8x8 digits,
    so that seeded runs start from the same weights."""
    convs = [(2, 1), (4, 2), (8, 4), (8, 8), (16, 8), (16, 16), (16, 16), (16, 16)]
    index = [0, 4, 8, 11, 15, 18, 21, 24] if batch_norm else [0, 3, 6, 8, 11, 13, 15, 17]
    expected = []
    for i, (out, inp) in zip(index, convs):
        expected.append((f"{i}.weight", (out, inp, 3, 3)))
        expected += [(f"{i + 1}.weight", (out,)), (f"{i + 1}.bias", (out,))] if batch_norm else [(f"{i}.bias", (out,))]
    head = 29 if batch_norm else 21
    expected += [(f"{head}.weight", (10, 16)), (f"{head}.bias", (10,))]
    model = build_model("vgg11", in_channels=1, image_size=8, num_classes=10, width=2, batch_norm=batch_norm)
    assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == expected


def test_resnet18_classifies_crops():
    model = build_model("resnet18", in_channels=3, image_size=32, num_classes=3).eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("channels, size", [(1, 8), (3, 32)])
def test_autoencoder_maps_images_to_images_in_unit_range(channels, size):
    torch.manual_seed(0)
    model = build_model("autoencoder", in_channels=channels, image_size=size, width=4)
    out = model(torch.rand(2, channels, size, size))
    assert out.shape == (2, channels, size, size)
    assert out.min() > 0 and out.max() < 1  # a sigmoid output


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", in_channels=1, image_size=28)
