"""Networks of thesis Chapter 3: F1 and C1 (Table 3.1), MNIST-FC and LeNet (Table 3.4),
and the CIFAR-10 "AlexNet" and VGG16 of the authors' code.

Every model is a chain of Linear/Conv layers with ReLU, max-pooling and (VGG16)
dropout between them, so the rescaling T_lambda of Sec. 3.3.1 leaves its function
unchanged (max-pooling commutes with positive scaling; dropout is the identity in eval
mode). Layers are registered in forward order, which ``landscapes.core.flatness.rescale``
relies on.

Input sizes. The flattened size after the convolutions is computed from
``image_size``. C1 and LeNet use unpadded ("valid") 5x5 convolutions when the image is
at least 16 pixels wide (so C1 on 28x28 is exactly Table 3.1's FC(320, 120)) and
"same" padding (2) on smaller images such as the 8x8 scikit-learn digits of the quick
preset, where two valid 5x5 conv-pool stages would leave nothing. VGG16 pools with
``ceil_mode=True`` so that five 2x2 pools reach 1x1 from 8x8 as from 32x32 (on 32x32 it
is the usual floor pooling).
"""

from __future__ import annotations

import math

from torch import nn

MODEL_NAMES = ("f1", "c1", "mnist_fc", "lenet", "alexnet_cifar", "vgg16_cifar")

# VGG16 configuration "D" (torchvision): channels, "M" = 2x2 max-pool.
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _mlp(sizes: list[int], bias: bool) -> list[nn.Module]:
    mods: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(nn.Linear(n_in, n_out, bias=bias))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return mods


def _conv_out(size: int, kernel: int, padding: int, stride: int = 1) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _pool_out(size: int, kernel: int, stride: int, padding: int = 0, ceil: bool = False) -> int:
    span = size + 2 * padding - kernel
    out = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + padding:  # PyTorch drops a window starting in the padding
        out -= 1
    return out


def _two_stage_convnet(
    channels: tuple[int, int], hidden: tuple[int, int], *, in_channels: int, image_size: int, num_classes: int, bias: bool
) -> nn.Sequential:
    """[conv5-ReLU-maxpool2] x 2, then FC(flat, h1), FC(h1, h2), FC(h2, classes): C1 and LeNet."""
    padding = 0 if image_size >= 16 else 2
    size = image_size
    for _ in range(2):
        size = _pool_out(_conv_out(size, 5, padding), 2, 2)
    if size < 1:
        raise ValueError(f"image_size {image_size} is too small for two conv-pool stages")
    flat = channels[1] * size * size
    return nn.Sequential(
        nn.Conv2d(in_channels, channels[0], 5, padding=padding, bias=bias),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels[0], channels[1], 5, padding=padding, bias=bias),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        *_mlp([flat, hidden[0], hidden[1], num_classes], bias),
    )


def _alexnet_cifar(*, in_channels: int, image_size: int, num_classes: int, bias: bool) -> nn.Sequential:
    """The authors' CIFAR-10 "AlexNet": two conv5(64)-ReLU-maxpool(3, 2, 1) stages, FC 384, 192, classes."""
    size = image_size
    for _ in range(2):
        size = _pool_out(_conv_out(size, 5, 2), 3, 2, 1)
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 5, padding=2, bias=bias),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(64, 64, 5, padding=2, bias=bias),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Flatten(),
        *_mlp([64 * size * size, 384, 192, num_classes], bias),
    )


def _vgg16_cifar(*, in_channels: int, image_size: int, num_classes: int, bias: bool) -> nn.Sequential:
    """VGG16 (cfg D, no batch norm) with the authors' 512-512-240 classifier and init.

    Init as the authors' code: conv weights N(0, sqrt(2 / n)) with n = k*k*out_channels,
    linear weights N(0, 0.01), biases zero.
    """
    mods: list[nn.Module] = []
    channels, size = in_channels, image_size
    for item in _VGG16_CFG:
        if item == "M":
            mods.append(nn.MaxPool2d(2, ceil_mode=True))
            size = _pool_out(size, 2, 2, ceil=True)
        else:
            mods += [nn.Conv2d(channels, item, 3, padding=1, bias=bias), nn.ReLU()]
            channels = item
    mods += [
        nn.Flatten(),
        nn.Linear(512 * size * size, 512, bias=bias),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(512, 240, bias=bias),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(240, num_classes, bias=bias),
    ]
    model = nn.Sequential(*mods)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def build_model(name: str, *, in_channels: int, image_size: int, num_classes: int = 10, bias: bool = True) -> nn.Module:
    """A fresh network ``name`` (one of ``MODEL_NAMES``) for ``in_channels`` x ``image_size``^2 inputs.

    - ``f1``: FC(d, 300), FC(300, 100), FC(100, classes), d = C*H*W (Table 3.1).
    - ``c1``: conv(5, 5, 10), conv(5, 5, 20) each with ReLU and 2x2 max-pool,
      FC(flat, 120), FC(120, 84), FC(84, classes); flat = 320 on 28x28 (Table 3.1).
    - ``mnist_fc``: d -> 512 x 5 -> classes (Table 3.4, "512 fully-connected x 5").
    - ``lenet``: conv(5, 5, 6), conv(5, 5, 16) each with ReLU and 2x2 max-pool, FC 120,
      84, classes (Table 3.4, "2 conv-pool layers, 120, 84 fully-connected").
    - ``alexnet_cifar``, ``vgg16_cifar``: the CIFAR-10 networks of the authors' code.

    PyTorch's default initialisation except VGG16 (the authors' init). Randomness comes
    from the global torch generator: seed it (or use ``torch.random.fork_rng``) first.
    ``bias=False`` builds every layer without bias (the authors' MNIST-FC and LeNet).
    """
    if image_size < 1 or in_channels < 1 or num_classes < 1:
        raise ValueError(f"bad input shape: in_channels={in_channels}, image_size={image_size}, num_classes={num_classes}")
    flat = in_channels * image_size * image_size
    kw = dict(in_channels=in_channels, image_size=image_size, num_classes=num_classes, bias=bias)
    if name == "f1":
        return nn.Sequential(nn.Flatten(), *_mlp([flat, 300, 100, num_classes], bias))
    if name == "mnist_fc":
        return nn.Sequential(nn.Flatten(), *_mlp([flat] + [512] * 5 + [num_classes], bias))
    if name == "c1":
        return _two_stage_convnet((10, 20), (120, 84), **kw)
    if name == "lenet":
        return _two_stage_convnet((6, 16), (120, 84), **kw)
    if name == "alexnet_cifar":
        return _alexnet_cifar(**kw)
    if name == "vgg16_cifar":
        return _vgg16_cifar(**kw)
    raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")


def describe_architecture(model: nn.Module) -> list[dict]:
    """One row per Linear/Conv layer, in the thesis's notation (Table 3.1).

    ``layer`` is ``FC(in, out)`` or ``conv(kh, kw, out_channels)``; ``shape`` the weight
    shape; ``params`` the layer's weight and bias count; ``bias`` whether it has one.
    """
    rows = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            label = f"FC({m.in_features}, {m.out_features})"
        elif isinstance(m, nn.modules.conv._ConvNd):
            label = f"conv({', '.join(str(k) for k in m.kernel_size)}, {m.out_channels})"
        else:
            continue
        params = m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        rows.append({"layer": label, "shape": tuple(m.weight.shape), "params": params, "bias": m.bias is not None})
    return rows
