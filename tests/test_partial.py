import math

import pandas as pd
import pytest
import torch

from landscapes.ch4.partial.classification import augment, build_vgg, observe_copies, ratio_label, table_4_1, eval_mask_seed


@pytest.mark.parametrize("name, size, channels", [("vgg16", 8, 1), ("vgg16", 32, 3), ("vgg11", 28, 1)])
def test_vgg_runs_on_every_image_size(name, size, channels):
    net = build_vgg(name, in_channels=channels, image_size=size, num_classes=10, width=4)
    assert net(torch.zeros(2, channels, size, size)).shape == (2, 10)


def test_vgg16_has_thirteen_conv_layers():
    net = build_vgg("vgg16", in_channels=3, image_size=32, num_classes=10)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 13


def test_observe_copies_keeps_full_copy_and_observes_the_others():
    n, ratios = 6, [0.5, 0.25]
    x = torch.ones(18, 3, 4, 4)
    idx = torch.arange(18)  # copy 0: rows 0-5, copy 1 (0.5): 6-11, copy 2 (0.25): 12-17
    out = observe_copies(x, idx, torch.Generator().manual_seed(0), num_images=n, ratios=ratios)
    kept = (out[:, 0] != 0).flatten(1).sum(1)
    assert (kept[:6] == 16).all() and (kept[6:12] == 8).all() and (kept[12:] == 4).all()
    assert ((out != 0) == (out[:, :1] != 0)).all()


def test_observe_copies_draws_fresh_masks_per_batch():
    x, idx = torch.ones(4, 1, 6, 6), torch.arange(4, 8)
    g = torch.Generator().manual_seed(0)
    a = observe_copies(x, idx, g, num_images=4, ratios=[0.5])
    b = observe_copies(x, idx, g, num_images=4, ratios=[0.5])
    assert not torch.equal(a, b)


def test_augment_without_transforms_is_identity_and_flip_is_mirror():
    x = torch.rand(5, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, g, translate=0, flip=False, rotate_deg=0), x)
    flipped = augment(x, g, translate=0, flip=True, rotate_deg=0)
    for a, b in zip(flipped, x):
        assert torch.equal(a, b) or torch.equal(a, b.flip(2))


def test_augment_integer_translation_shifts_pixels():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    out = augment(x, torch.Generator().manual_seed(1), translate=2, flip=False, rotate_deg=0)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)  # moved whole, not blurred
    assert out.max().item() == pytest.approx(1.0, abs=1e-5)


def test_table_4_1_has_every_method_and_column():
    cols = ["1.0", "0.5", "Random"]
    records = [{"method": m, "ratio": r, "accuracy": a} for m in ("VGG-16", "VGG-16-Ours") for r, a in zip(cols, (0.9, 0.5, 0.4))]
    table = table_4_1(records, cols)
    assert list(table.columns) == ["method", "source", *cols]
    ours = table[table.source == "this run"]
    assert set(ours.method) == {"VGG-16", "VGG-16-Ours"}
    thesis = table[(table.source != "this run") & (table.method == "VGG-16")]
    assert thesis["1.0"].item() == 0.93 and thesis["Random"].item() == 0.19
    assert math.isnan(table[(table.source != "this run") & (table.method == "Recon+VGG-16")]["Random"].item())


def test_ratio_labels_and_mask_seeds_are_distinct():
    assert [ratio_label(r) for r in (1.0, 0.9, 0.125, "random")] == ["1.0", "0.9", "0.125", "Random"]
    seeds = {eval_mask_seed(0, r) for r in (1.0, 0.9, 0.1, "random")}
    assert len(seeds) == 4


@pytest.mark.parametrize("size, channels", [(8, 1), (32, 3)])
def test_autoencoder_maps_images_to_images_in_unit_range(size, channels):
    from landscapes.ch4.partial.classification import build_autoencoder

    out = build_autoencoder(channels, width=4)(torch.rand(2, channels, size, size))
    assert out.shape == (2, channels, size, size)
    assert out.min() >= 0 and out.max() <= 1


def test_reconstructor_routes_to_nearest_ratio_and_leaves_full_images_alone():
    from landscapes.ch4.partial.classification import Reconstructor

    class Const(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, x):
            return torch.full_like(x, self.value)

    recon = Reconstructor({0.1: Const(0.1), 0.5: Const(0.5), 0.9: Const(0.9)})
    ratios = torch.tensor([0.1, 0.12, 0.5, 0.74, 0.9, 0.97, 1.0])
    out = recon(torch.zeros(7, 1, 2, 2), ratios)
    assert out[:, 0, 0, 0].tolist() == pytest.approx([0.1, 0.1, 0.5, 0.9, 0.9, 0.0, 0.0])
