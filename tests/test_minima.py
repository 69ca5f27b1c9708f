"""Sec. 3.5 runs: training to a threshold, measuring a minimum, and the tables built from runs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from flatscape.ch3 import curves, measure, tables, train
from flatscape.ch3.settings import MeasureSettings, RunSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import ArtifactError, load_json, save_arrays


def _write_dataset(path, n_train=120, n_test=40, size=8, seed=0):
    """Two well-separated classes of 8x8 images, so a tiny net reaches 100% quickly."""
    g = np.random.default_rng(seed)

    def split(n):
        y = g.integers(0, 2, n)
        x = g.integers(0, 60, (n, 1, size, size))
        x[y == 1, :, : size // 2] += 180
        return x.astype(np.uint8), y.astype(np.int64)

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    save_arrays(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                classes=np.array(["a", "b"]), name=np.array("digits"))  # fmt: skip
    return path


def _train(tmp_path, data, **kw):
    run = dict(network="f1", bias=False, train_size=100, batch_size=20, epochs=30, stop_loss=1e-2, seed=3,
               optimiser={"name": "adam", "lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0, "lr_decay": 0.0,
                          "step_size": 0, "gamma": 1.0},
               checkpoint_every=1, device="cpu")  # fmt: skip
    paths = dict(model_path=tmp_path / "m.pt", metrics_path=tmp_path / "m.json", checkpoint_path=tmp_path / "m.ckpt",
                 snapshot_dir=None)
    for key in list(kw):
        if key in paths:
            paths[key] = kw.pop(key)
    run.update(kw)
    return train.train_minimum(data, settings(RunSettings, run), device=torch.device("cpu"), progress=False, **paths)


def _measure(tmp_path, data, **kw):
    s = dict(samples=80, eps=None, method="lanczos", tol=1e-4, max_hvp=300, batch_size=None, dtype="float32", float64_below=None,
             warm_start=[], rescale_log_range=1.0, seed=0, device="cpu")  # fmt: skip
    s.update(kw)
    return measure.measure_minimum(tmp_path / "m.pt", data, settings(MeasureSettings, s), device=torch.device("cpu"))


def test_training_stops_at_the_threshold_and_records_it(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    m = _train(tmp_path, data)
    assert m["reached_threshold"] is True
    assert m["train_loss"] < 1e-2 and m["train_accuracy"] == 1.0
    assert m["epochs_run"] < 30 and len(m["history"]) == m["epochs_run"]
    assert m["train_size"] == 100 and 0.0 <= m["test_accuracy"] <= 1.0
    assert not (tmp_path / "m.ckpt").exists()  # superseded by the finished model
    assert load_json(tmp_path / "m.json")["reached_threshold"] is True
    model = train.load_minimum(tmp_path / "m.pt")
    assert not model.training


def test_epoch_cap_reached_first_is_recorded_as_not_reached(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    m = _train(tmp_path, data, epochs=1, stop_loss=1e-12)
    assert m["reached_threshold"] is False and m["epochs_run"] == 1


def test_same_seed_same_minimum(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    a = _train(tmp_path / "a", data, epochs=3, model_path=tmp_path / "a.pt", metrics_path=tmp_path / "a.json")
    b = _train(tmp_path / "b", data, epochs=3, model_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.json")
    assert a["train_loss"] == b["train_loss"]
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (tmp_path / "a.pt", tmp_path / "b.pt"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_size_larger_than_the_data_fails_before_training(tmp_path):
    data = _write_dataset(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="train_size 1000 exceeds the 120"):
        _train(tmp_path, data, train_size=1000)
    assert not (tmp_path / "m.pt").exists()


def test_random_lambdas_have_product_one():
    lam = measure.random_lambdas(5, 2.0, seed=1)
    assert len(lam) == 5 and all(v > 0 for v in lam)
    assert abs(sum(math.log(v) for v in lam)) < 1e-12
    assert max(lam) / min(lam) > 1.5  # actually rescales
    assert lam == measure.random_lambdas(5, 2.0, seed=1) and lam != measure.random_lambdas(5, 2.0, seed=2)


def test_measure_riemannian_invariant_euclidean_not_and_normalised_matches_formula(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    _train(tmp_path, data, epochs=3)
    r = _measure(tmp_path, data, eps=1e-3, tol=1e-10, dtype="float64", rescale_log_range=1.5)
    assert r["riemannian_converged"] and r["riemannian"] > 0
    assert r["riemannian_rescale_change"] < 1e-8
    assert abs(r["euclidean_rescaled"] / r["euclidean"] - 1) > 1e-3
    assert r["normalised"] == pytest.approx(1e-6 * r["riemannian"] / (2 + 2 * r["flatness_loss"]), rel=1e-12)
    # flatness loss is the mean CE over the first 80 training images
    from flatscape.core.datasets import load

    x, y = measure.flatness_data(load(data), 80, torch.device("cpu"))
    model = train.load_minimum(tmp_path / "m.pt").double()
    assert r["flatness_loss"] == pytest.approx(F.cross_entropy(model(x.double()), y).item(), rel=1e-9)


def test_measure_with_warm_start_gives_the_cold_values(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    _train(tmp_path, data, epochs=3)
    kw = dict(tol=1e-10, dtype="float64")
    cold = _measure(tmp_path, data, **kw)
    warm = _measure(tmp_path, data, **kw, warm_start=[{"fraction": 0.5}, {"fraction": 1.0, "dtype": "float32", "tol": 1e-4}])
    assert cold["riemannian_warm_hvp"] == 0 and warm["riemannian_warm_hvp"] > 0 and warm["warm_start"] == 2
    for key in ("riemannian", "euclidean", "riemannian_rescaled", "euclidean_rescaled"):
        assert warm[key] == pytest.approx(cold[key], rel=1e-9), key
    assert warm["riemannian_hvp"] < cold["riemannian_hvp"]
    # "auto" (the schema's default) on 80 samples: a 4-sample subsample, so the library stays cold
    auto = _measure(tmp_path, data, **kw, warm_start="auto")
    assert auto["warm_start"] == "auto" and auto["riemannian_warm_hvp"] == 0 and auto["riemannian"] == cold["riemannian"]


def test_flatness_subset_larger_than_the_data_fails(tmp_path):
    data = _write_dataset(tmp_path / "d.npz")
    _train(tmp_path, data, epochs=1)
    with pytest.raises(ValueError, match="flatness_samples 500 exceeds"):
        _measure(tmp_path, data, samples=500)


def _fake_runs():
    rows = []
    for net in ("mnist_fc", "lenet"):
        for batch_size, flat, acc in ((200, 1.0, 0.99), (5000, 10.0, 0.97)):
            for seed in range(3):
                rows.append({"dataset": "mnist", "network": net, "row": f"mnist-{net}", "protocol": "ce_stop",
                             "batch_size": batch_size, "seed": seed, "epochs_run": 10 + seed, "train_loss": 1e-6,
                             "flatness_loss": 0.5, "reached_threshold": seed != 2, "test_accuracy": acc + 0.001 * seed,
                             "train_accuracy": 1.0, "riemannian": flat * (1 + seed), "euclidean": 2 * flat,
                             "normalised": flat / 2, "riemannian_rescaled": flat * (1 + seed),
                             "euclidean_rescaled": 100 * flat * (seed + 1) ** 3, "normalised_rescaled": flat / 2})  # fmt: skip
    df = tables.add_conventions(pd.DataFrame(rows))
    df["generalisation_gap"] = df["train_accuracy"] - df["test_accuracy"]
    return df


def test_table_3_7_means_thesis_columns_and_ratios():
    t = tables.table_3_7(_fake_runs())
    assert list(t["batch_size"]) == [200, 5000, 200, 5000]
    fc_small, fc_large = t.iloc[0], t.iloc[1]
    assert fc_small["reached_threshold"] == "2/3" and fc_small["runs"] == 3
    assert fc_small["riemannian_lambda_max"] == f"{2.0:.4g} ± {np.std([1, 2, 3]):.4g}"
    assert fc_small["thesis_test_accuracy_pct"] == "98.5 ± 0.1" and fc_large["thesis_spectral_norm"] == "32.99 ± 17.13"
    assert fc_large["large_small_ratio_riemannian"] == pytest.approx(10.0)
    assert fc_large["large_small_ratio_thesis"] == pytest.approx(32.99 / 0.00086)
    assert math.isnan(fc_small["large_small_ratio_riemannian"])


def test_kendall_tables_see_the_rescaling_only_in_euclidean():
    runs = _fake_runs()
    plain = tables.kendall_table(runs).set_index(["group", "measure"])
    scaled = tables.kendall_table(runs, rescaled=True).set_index(["group", "measure"])
    # flatter (small batch) minima have higher accuracy in the fake runs: tau < 0
    assert plain.loc[("pooled", "riemannian"), "tau_test_accuracy"] < 0
    assert plain.loc[("pooled", "riemannian"), "runs"] == 12
    assert scaled.loc[("pooled", "riemannian (rescaled)"), "tau_test_accuracy"] == plain.loc[("pooled", "riemannian"), "tau_test_accuracy"]
    assert scaled.loc[("pooled", "euclidean (rescaled)"), "tau_test_accuracy"] != plain.loc[("pooled", "euclidean"), "tau_test_accuracy"]
    gap = plain.loc[("MNIST / LeNet", "riemannian")]
    assert gap["tau_generalisation_gap"] == pytest.approx(-gap["tau_test_accuracy"])


def test_collect_runs_keeps_configured_row_order_and_rejects_damage(tmp_path):
    from flatscape.pipeline.io import save_json

    pairs = []
    for i, net in enumerate(("mnist_fc", "lenet")):
        for b in (200, 5000):
            t, f = tmp_path / f"{net}{b}.json", tmp_path / f"{net}{b}_f.json"
            save_json(t, {"dataset": "mnist", "network": net, "batch_size": b, "seed": 0, "train_accuracy": 1.0,
                          "test_accuracy": 0.9, "history": [1, 2]})  # fmt: skip
            save_json(f, {"riemannian": 1.0, "lambdas": [1.0]})
            pairs.append((t, f))
    runs = tables.collect_runs(pairs)
    assert list(runs["network"]) == ["mnist_fc", "mnist_fc", "lenet", "lenet"]
    assert "history" not in runs and runs["generalisation_gap"].iloc[0] == pytest.approx(0.1)
    pairs[0][1].write_text('{"riemannian": 1.')
    with pytest.raises(ArtifactError, match="truncated or corrupted"):
        tables.collect_runs(pairs)
    with pytest.raises(ValueError, match="no runs"):
        tables.collect_runs([])


def test_layer_normalised_curve_passes_through_the_minimum_and_restores_weights(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    _train(tmp_path, data, epochs=1, stop_loss=1e-12)
    from flatscape.core.datasets import load

    model = train.load_minimum(tmp_path / "m.pt")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = measure.flatness_data(load(data), 80, torch.device("cpu"))
    curve = curves.layer_normalised_curve(model, batch, [-1.0, 0.0, 1.0], seed=0)
    with torch.no_grad():
        at_min = F.cross_entropy(model(batch[0]), batch[1]).item()
    assert curve[1] == pytest.approx(at_min, rel=1e-5)
    assert abs(curve[0] - at_min) > 1e-3 * at_min and abs(curve[2] - at_min) > 1e-3 * at_min
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # layer normalisation: a rescaled copy of the network traces the same curve
    from flatscape.core.flatness import rescale

    scaled = rescale(model, [4.0, 0.5, 0.5])
    again = curves.layer_normalised_curve(scaled, batch, [-1.0, 0.0, 1.0], seed=0)
    assert again == pytest.approx(curve, rel=1e-4)


def test_settings_tables_come_from_the_rows():
    opt = {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}
    rows = [{"dataset": "cifar10", "network": "alexnet_cifar", "bias": True, "seeds": 2, "train_size": None,
             "flatness_samples": 5000, "eps": None, "small": {"batch_size": 200, "epochs": 200, "optimiser": opt},
             "large": {"batch_size": 2000, "epochs": 500, "optimiser": dict(opt, lr=1e-4, momentum=0.99)}}]  # fmt: skip
    t4 = tables.table_3_4(rows)
    assert "FC(4096, 384)" in t4.loc[0, "network_1"] and "conv(5, 5, 64)" in t4.loc[0, "network_1"]
    t5 = tables.table_3_5(rows, {"cifar10": (50000, 10000)})
    assert t5.loc[0, "train_size_used"] == 50000 and t5.loc[0, "flatness_samples"] == 5000
    t6 = tables.table_3_6(rows, 1e-6)
    assert t6.loc[0, "large_optimiser"] == "SGD, lr=0.0001, momentum=0.99" and t6.loc[0, "small_epochs_cap"] == 200
