"""Every network of the pipeline, in one registry: F1 and C1 (Table 3.1), MNIST-FC and
LeNet (Table 3.4), the CIFAR-10 "AlexNet" and VGG16 of the Chapter 3 authors' code, one
VGG (with or without batch norm) for Chapter 4's classifiers, ResNet-18 for Chapter 4b's
crops, and the Recon baselines' autoencoder.

The Chapter 3 networks are each a chain of Linear/Conv layers with ReLU, max-pooling and (VGG16)
dropout between them, so the rescaling T_lambda of Sec. 3.3.1 leaves its function
unchanged (max-pooling commutes with positive scaling; dropout is the identity in eval
mode). Layers are registered in forward order, which ``flatscape.core.flatness.rescale``
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

import logging
import math
from typing import Callable

import torch
from torch import nn

from flatscape.pipeline.io import load_model

log = logging.getLogger(__name__)

# VGG configurations: channel multipliers of ``width`` ("D" is VGG-16), "M" = 2x2 max-pool.
VGG_CONFIGS = {
    "vgg11": (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"),
    "vgg16": (1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"),
}


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


def alexnet_cifar(*, in_channels: int, image_size: int, num_classes: int, bias: bool = True) -> nn.Sequential:
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


def vgg(
    config: str = "vgg16",
    *,
    in_channels: int,
    image_size: int,
    num_classes: int,
    width: int = 64,
    batch_norm: bool = True,
    head: str = "linear",
    bias: bool = True,
) -> nn.Sequential:
    """One VGG (Simonyan & Zisserman's conv stack), with or without batch norm, with one of two heads.

    Channel counts are ``width`` times the configuration's multipliers (64, 128, 256,
    512 at ``width=64``); with ``batch_norm`` every conv is followed by a BatchNorm2d and
    has no bias of its own.

    - ``head="linear"`` (Chapter 4's classifier, Sec. 4.4.1): pooling stops once the
      feature map is 1x1, so the same network runs on 8x8 digits; then global average
      pooling and one linear layer. PyTorch's default initialisation.
    - ``head="authors"`` (the VGG16 of the Chapter 3 authors' code): every pool with
      ``ceil_mode=True`` (five pools reach 1x1 from 8x8 as from 32x32, where it is the
      usual floor pooling), the 512-512-240 classifier with dropout, and their init:
      conv weights N(0, sqrt(2 / n)) with n = k*k*out_channels, linear weights
      N(0, 0.01), biases zero.
    """
    if config not in VGG_CONFIGS:
        raise ValueError(f"unknown VGG configuration {config!r}; choose from {sorted(VGG_CONFIGS)}")
    if head not in ("linear", "authors"):
        raise ValueError(f"unknown VGG head {head!r}; choose 'linear' or 'authors'")
    authors = head == "authors"
    layers: list[nn.Module] = []
    channels, size = in_channels, image_size
    for item in VGG_CONFIGS[config]:
        if item == "M":
            if authors:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                size = _pool_out(size, 2, 2, ceil=True)
            elif size > 1:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        out = width * item
        layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=bias and not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU() if authors else nn.ReLU(inplace=True))
        channels = out
    if not authors:
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes, bias=bias))
    layers += [
        nn.Flatten(),
        nn.Linear(channels * size * size, 512, bias=bias),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(512, 240, bias=bias),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(240, num_classes, bias=bias),
    ]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.zeros_(m.bias)
    return model


def resnet18(*, num_classes: int, weights: str | None = None, **_shape) -> nn.Module:
    """torchvision's ResNet-18 (He et al. 2016) with a ``num_classes`` head; ``weights`` a local state-dict file or None.

    The input shape is not needed (global pooling); ``weights`` (the thesis started from
    ImageNet, which no offline machine has) initialises every layer but the head.
    """
    # Imported here: torchvision costs seconds at the start of every job that imports this
    # registry, and only ResNet-18 needs it.
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, _ = net.load_state_dict(state, strict=False)
        log.info("ResNet-18 initialised from %s (missing: %s)", weights, missing)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def autoencoder(*, in_channels: int, width: int = 32, **_shape) -> nn.Sequential:
    """A denoising convolutional autoencoder (Sec. 4.4.1's Recon baselines): two stride-2 stages down, two up.

    Input and output are images in [0, 1] (sigmoid output); missing pixels arrive as zeros.
    """
    w = width
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w, w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(2 * w, w, 3, padding=1), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w, in_channels, 3, padding=1), nn.Sigmoid(),
    )  # fmt: skip


def _f1(*, in_channels, image_size, num_classes, bias=True):
    return nn.Sequential(nn.Flatten(), *_mlp([in_channels * image_size**2, 300, 100, num_classes], bias))


def _mnist_fc(*, in_channels, image_size, num_classes, bias=True):
    return nn.Sequential(nn.Flatten(), *_mlp([in_channels * image_size**2] + [512] * 5 + [num_classes], bias))


def _c1(**kw):
    return _two_stage_convnet((10, 20), (120, 84), **{"bias": True, **kw})


def _lenet(**kw):
    return _two_stage_convnet((6, 16), (120, 84), **{"bias": True, **kw})


def _vgg16_cifar(**kw):
    return vgg("vgg16", width=64, batch_norm=False, head="authors", **kw)


def _vgg11(**kw):
    return vgg("vgg11", **kw)


def _vgg16(**kw):
    return vgg("vgg16", **kw)


# Every network of the pipeline, by the name configs and saved models use.
REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "f1": _f1,
    "c1": _c1,
    "mnist_fc": _mnist_fc,
    "lenet": _lenet,
    "alexnet_cifar": alexnet_cifar,
    "vgg16_cifar": _vgg16_cifar,
    "vgg11": _vgg11,
    "vgg16": _vgg16,
    "resnet18": resnet18,
    "autoencoder": autoencoder,
}
MODEL_NAMES = tuple(REGISTRY)


def build_model(name: str, *, in_channels: int, image_size: int, num_classes: int = 10, **options) -> nn.Module:
    """A fresh network ``name`` (a key of ``REGISTRY``) for ``in_channels`` x ``image_size``^2 inputs.

    - ``f1``: FC(d, 300), FC(300, 100), FC(100, classes), d = C*H*W (Table 3.1).
    - ``c1``: conv(5, 5, 10), conv(5, 5, 20) each with ReLU and 2x2 max-pool,
      FC(flat, 120), FC(120, 84), FC(84, classes); flat = 320 on 28x28 (Table 3.1).
    - ``mnist_fc``: d -> 512 x 5 -> classes (Table 3.4, "512 fully-connected x 5").
    - ``lenet``: conv(5, 5, 6), conv(5, 5, 16) each with ReLU and 2x2 max-pool, FC 120,
      84, classes (Table 3.4, "2 conv-pool layers, 120, 84 fully-connected").
    - ``alexnet_cifar``, ``vgg16_cifar``: the CIFAR-10 networks of the authors' code
      (``vgg16_cifar`` is :func:`vgg` without batch norm, with the authors' head).
    - ``vgg11``, ``vgg16``: Chapter 4's classifiers (:func:`vgg`; options ``width``,
      ``batch_norm``); ``resnet18``: Chapter 4b's crop classifier; ``autoencoder``: the
      Recon baselines' denoiser (option ``width``).

    ``options`` are the network's own keywords, e.g. ``bias=False`` for a network
    without biases (the authors' MNIST-FC and LeNet). PyTorch's default initialisation
    except VGG16's authors' head. Randomness comes from the global torch generator: seed
    it (or use ``torch.random.fork_rng``) first.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {MODEL_NAMES}")
    if image_size < 1 or in_channels < 1 or num_classes < 1:
        raise ValueError(f"bad input shape: in_channels={in_channels}, image_size={image_size}, num_classes={num_classes}")
    return REGISTRY[name](in_channels=in_channels, image_size=image_size, num_classes=num_classes, **options)


class Normalise(nn.Module):
    """Per-channel standardisation as the network's first layer, so saved models carry it."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def model_spec(name: str, *, in_channels: int, image_size: int, num_classes: int, mean=None, std=None, **options) -> dict:
    """Everything :func:`from_spec` needs to rebuild a network: saved beside its weights."""
    return {"name": name, "options": dict(options), "in_channels": int(in_channels), "image_size": int(image_size),
            "num_classes": int(num_classes), "mean": mean, "std": std}  # fmt: skip


def from_spec(spec: dict) -> nn.Module:
    """The untrained network of ``spec``, behind a :class:`Normalise` layer when it has channel statistics."""
    net = build_model(spec["name"], in_channels=spec["in_channels"], image_size=spec["image_size"],
                      num_classes=spec["num_classes"], **spec["options"])  # fmt: skip
    return net if spec["mean"] is None else nn.Sequential(Normalise(spec["mean"], spec["std"]), net)


def load(path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """A network saved by ``io.save_model`` with its spec, rebuilt from the registry, in eval mode."""
    return load_model(path, from_spec, map_location=device)


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
