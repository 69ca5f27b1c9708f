import math

import numpy as np
import pytest
import torch

from flatscape.ch4.partial.autoencoders import Reconstructor, load_reconstructor, train_autoencoder
from flatscape.ch4.partial.classifier import train_classifier
from flatscape.ch4.partial.detection import ObservedLoader
from flatscape.ch4.partial.evaluate import evaluate_method
from flatscape.ch4.partial.observe import augment, encode_test_sets, eval_mask_seed, observe_batch, observe_copies
from flatscape.ch4.partial.settings import (
    Augment,
    AutoencoderSettings,
    ClassifierSettings,
    EncodeSettings,
    EvalSettings,
)
from flatscape.ch4.partial.tables import table_4_1, table_4_2c_map50
from flatscape.core import models
from flatscape.core.train import Optimiser
from flatscape.pipeline.config import ConfigError, settings
from flatscape.pipeline.io import load_arrays, load_json, save_arrays
from flatscape.pipeline.naming import Ratio

NO_AUGMENT = Augment(translate=0, flip=False, rotate_deg=0)


def test_observe_copies_keeps_full_copy_and_observes_the_others():
    n, ratios = 6, (Ratio(0.5), Ratio(0.25))
    x = torch.ones(18, 3, 4, 4)
    idx = torch.arange(18)  # copy 0: rows 0-5, copy 1 (0.5): 6-11, copy 2 (0.25): 12-17
    out = observe_copies(x, idx, torch.Generator().manual_seed(0), num_images=n, ratios=ratios)
    kept = (out[:, 0] != 0).flatten(1).sum(1)
    assert kept.tolist() == [16] * 6 + [8] * 6 + [4] * 6
    assert ((out != 0) == (out[:, :1] != 0)).all()  # one mask for every channel


def test_observe_copies_draws_fresh_masks_per_batch():
    x, idx = torch.ones(4, 1, 6, 6), torch.arange(4, 8)
    g = torch.Generator().manual_seed(0)
    a = observe_copies(x, idx, g, num_images=4, ratios=(Ratio(0.5),))
    b = observe_copies(x, idx, g, num_images=4, ratios=(Ratio(0.5),))
    assert not torch.equal(a, b)


def test_observe_copies_draws_a_mask_seed_even_for_full_batches():
    # the epoch's stream must not depend on which copies a batch holds
    g, h = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    observe_copies(torch.ones(2, 1, 4, 4), torch.arange(2), g, num_images=4, ratios=())
    torch.randint(2**31 - 1, (1,), generator=h)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=h))


def test_observe_batch_keeps_the_ratio_of_every_image():
    out = observe_batch(torch.ones(5, 2, 8, 8), torch.Generator().manual_seed(0), Ratio(0.25))
    assert (out[:, 0] != 0).flatten(1).sum(1).tolist() == [16] * 5


def test_augment_without_transforms_is_identity_and_flip_is_mirror():
    x = torch.rand(64, 1, 6, 6)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, g, NO_AUGMENT), x)
    flipped = augment(x, g, Augment(translate=0, flip=True, rotate_deg=0))
    mirrored = [torch.equal(a, b.flip(2)) for a, b in zip(flipped, x)]
    assert all(m or torch.equal(a, b) for m, a, b in zip(mirrored, flipped, x))
    assert 0 < sum(mirrored) < len(x)  # each image flips with probability 1/2


def test_augment_integer_translation_shifts_pixels():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    out = augment(x, torch.Generator().manual_seed(1), Augment(translate=2, flip=False, rotate_deg=0))
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)  # moved whole, not blurred
    assert out.max().item() == pytest.approx(1.0, abs=1e-5)


def test_table_4_1_has_every_method_and_column():
    cols = ["1.0", "0.5", "Random"]
    records = [{"method": m, "ratio": r, "accuracy": a} for m in ("VGG-16", "VGG-16-Ours") for r, a in zip(cols, (0.9, 0.5, 0.4))]
    table = table_4_1(records, cols)
    assert list(table.columns) == ["method", "source", *cols]
    ours = table[table.source == "this run"]
    assert ours.method.tolist() == ["VGG-16", "VGG-16-Ours"]
    assert ours["0.5"].tolist() == [0.5, 0.5]
    thesis = table[(table.source != "this run") & (table.method == "VGG-16")]
    assert thesis["1.0"].item() == 0.93 and thesis["Random"].item() == 0.19
    assert math.isnan(table[(table.source != "this run") & (table.method == "Recon+VGG-16")]["Random"].item())


def test_observed_loader_keeps_the_ratio_with_fixed_masks():
    image = np.full((16, 16, 3), 7, np.uint8)
    loader = ObservedLoader(lambda i: (image, (16, 16), (16, 16)), fixed_ratio=0.25, seed=0)
    a, b, c = loader(0)[0], loader(0)[0], loader(1)[0]
    assert (a[..., 0] > 0).sum() == 64 and (a == a[..., :1]).all()
    np.testing.assert_array_equal(a, b)  # the test mask of an image is fixed
    assert not np.array_equal(a, c)


def test_observed_loader_draws_training_ratios_from_the_list():
    image = np.full((10, 10, 3), 9, np.uint8)
    loader = ObservedLoader(lambda i: (image, (10, 10), (10, 10)), ratios=[1.0, 0.5, 0.2], seed=1)
    kept = {int((loader(i % 3)[0][..., 0] > 0).sum()) for i in range(60)}
    assert kept == {100, 50, 20}


def test_table_4_2c_orders_ratios_from_full_down():
    t = table_4_2c_map50({"full": [{"ratio": 0.5, "map50": 0.2}, {"ratio": 1.0, "map50": 0.9}],
                          "ours": [{"ratio": 1.0, "map50": 0.8}, {"ratio": 0.5, "map50": 0.7}]})
    assert list(t.columns) == ["method", "1", "0.5"]
    assert t["method"].tolist() == ["YOLO (full images)", "YOLO-Ours (full + partial)"]
    assert t["0.5"].tolist() == [0.2, 0.7]


def test_mask_seeds_are_distinct_per_ratio_and_fixed_by_the_seed():
    ratios = [Ratio.parse(r) for r in (1.0, 0.9, 0.1, "random")]
    assert [eval_mask_seed(0, r) for r in ratios] == [1000, 900, 100, 1001]
    assert eval_mask_seed(1, Ratio(0.5)) == 10_007 + 500


OPTIMISER = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "lr_decay": 0.0, "step_size": 0,
             "gamma": 1.0}
TRAIN = {"epochs": 1, "batch_size": 16, "optimiser": OPTIMISER,
         "augment": {"translate": 1, "flip": False, "rotate_deg": 5}, "checkpoint_every": 1}


def classifier_settings(**changes) -> ClassifierSettings:
    cfg = {"model": {"name": "vgg11", "width": 2, "batch_norm": True}, "train": TRAIN,
           "train_ratios": [Ratio(0.5)], "seed": 0, "device": "cpu"}
    return settings(ClassifierSettings, {**cfg, **changes})


def test_settings_are_built_whole_and_reject_missing_or_unknown_keys():
    s = classifier_settings()
    assert s.train.augment == Augment(translate=1, flip=False, rotate_deg=5)
    assert s.train.optimiser == Optimiser(name="sgd", lr=0.05, momentum=0.9, weight_decay=0.0)
    assert s.train_ratios == (Ratio(0.5),)
    with pytest.raises(ConfigError, match="missing"):
        settings(EvalSettings, {"method": "vgg16", "ratio": Ratio(0.5), "batch_size": 8})
    with pytest.raises(ConfigError, match="unknown"):
        settings(EvalSettings, {"method": "vgg16", "ratio": Ratio(0.5), "batch_size": 8, "device": "cpu", "x": 1})


def test_reconstructor_routes_to_nearest_ratio_and_leaves_full_images_alone():
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


@pytest.fixture
def tiny_data(tmp_path):
    """A cached 8x8 data set of 48 training and 16 test images, 3 classes (the layout core.datasets writes)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    save_arrays(path, x_train=rng.integers(0, 256, (48, 1, 8, 8), dtype=np.uint8), y_train=rng.integers(0, 3, 48),
                x_test=rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8), y_test=rng.integers(0, 3, 16),
                classes=np.array(["a", "b", "c"]), name=np.array("tiny"))
    return path


@pytest.mark.usefixtures("one_thread")
def test_trained_classifier_is_saved_once_and_reloads_through_the_registry(tiny_data, tmp_path):
    s = classifier_settings()
    checkpoint = tmp_path / "vgg.ckpt"
    metrics = train_classifier(s, tiny_data, device=torch.device("cpu"), model_path=tmp_path / "vgg.pt",
                               metrics_path=tmp_path / "vgg.json", checkpoint_path=checkpoint, progress=False)
    assert not checkpoint.exists()  # the saved network superseded it
    assert load_json(tmp_path / "vgg.json")["train_ratios"] == [0.5]
    model, saved = models.load(tmp_path / "vgg.pt")
    assert saved["spec"]["name"] == "vgg11" and saved["spec"]["options"] == {"width": 2, "batch_norm": True}
    assert not model.training
    # the reloaded network scores the full test set exactly as the trained one did
    encode_test_sets(EncodeSettings(ratios=(Ratio(1.0), Ratio(0.5)), seed=0), tiny_data,
                     [tmp_path / "test.npz", tmp_path / "test_half.npz"])
    row = EvalSettings(method="vgg16_ours", ratios=(Ratio(1.0), Ratio(0.5)), batch_size=5, device="cpu")
    full, half = evaluate_method(row, tmp_path / "vgg.pt", [tmp_path / "test.npz", tmp_path / "test_half.npz"],
                                 device=torch.device("cpu"), out_paths=[tmp_path / "full.json", tmp_path / "half.json"])
    assert full["accuracy"] == metrics["test_accuracy"]
    assert full["method"] == "VGG-16-Ours" and full["ratio"] == "1.0" and full["extension"] is False
    assert load_json(tmp_path / "half.json") == half and half["ratio"] == "0.5"
    with pytest.raises(ValueError, match="2 ratios but 1 test sets"):
        evaluate_method(row, tmp_path / "vgg.pt", [tmp_path / "test.npz"], device=torch.device("cpu"),
                        out_paths=[tmp_path / "x.json", tmp_path / "y.json"])


@pytest.mark.usefixtures("one_thread")
def test_classifier_training_is_reproducible_from_its_settings(tiny_data, tmp_path):
    runs = [train_classifier(classifier_settings(), tiny_data, device=torch.device("cpu"), model_path=tmp_path / f"{k}.pt",
                             metrics_path=tmp_path / f"{k}.json", progress=False) for k in range(2)]
    assert runs[0]["history"] == runs[1]["history"]
    other = train_classifier(classifier_settings(train_ratios=[]), tiny_data, device=torch.device("cpu"),
                             model_path=tmp_path / "full.pt", metrics_path=tmp_path / "full.json", progress=False)
    assert other["history"][0]["loss"] != runs[0]["history"][0]["loss"]


@pytest.mark.usefixtures("one_thread")
def test_autoencoders_know_their_ratio_and_the_random_test_set_keeps_per_image_ratios(tiny_data, tmp_path):
    train = {**TRAIN, "optimiser": {**OPTIMISER, "name": "adam", "lr": 0.01}}
    paths = []
    for ratio in (Ratio(0.25), Ratio(0.75)):
        s = settings(AutoencoderSettings, {"ratio": ratio, "width": 2, "train": train, "seed": 0, "device": "cpu"})
        paths.append(tmp_path / f"ae{ratio.wildcard}.pt")
        metrics = train_autoencoder(s, tiny_data, device=torch.device("cpu"), model_path=paths[-1],
                                    metrics_path=tmp_path / f"ae{ratio.wildcard}.json", progress=False)
        assert metrics["ratio"] == ratio.value and math.isnan(metrics["history"][0]["accuracy"])
    recon = load_reconstructor(paths, torch.device("cpu"))
    assert recon.ratios == [0.25, 0.75]
    encode_test_sets(EncodeSettings(ratios=(Ratio.random(),), seed=0), tiny_data, [tmp_path / "random.npz"])
    test = load_arrays(tmp_path / "random.npz")
    kept = (test["x"] != 0).reshape(16, -1).sum(1)
    assert len(set(test["ratios"].tolist())) == 16 and (kept <= np.maximum(1, np.rint(test["ratios"] * 64))).all()
