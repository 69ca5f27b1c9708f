"""Table 3.7's two training protocols side by side: the thesis's CE stop and the authors'
fixed epoch budget, snapshots past the stop level, every printed convention, and the
config checks that keep a row to exactly one protocol."""

import copy
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_minima import _measure, _train, _write_dataset

from conftest import preset
from flatscape.ch3 import snapshots, tables
from flatscape.core.flatness import rescale, riemannian_spectral_norm
from flatscape.core.train import ForeignRunError
from flatscape.pipeline.config import ConfigError, minima_row_id, validate_config
from flatscape.pipeline.io import save_json

SLOW = {"name": "adam", "lr": 3e-4, "momentum": 0.9, "weight_decay": 0.0, "lr_decay": 0.0, "step_size": 0, "gamma": 1.0}
FAST = {"name": "adam", "lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0, "lr_decay": 0.0, "step_size": 0, "gamma": 1.0}


def test_fixed_epoch_run_trains_exactly_its_epochs_and_ignores_the_ce_stop(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    stopped = _train(tmp_path / "stop", data, epochs=30, stop_loss=1e-2, model_path=tmp_path / "s.pt",
                     metrics_path=tmp_path / "s.json", checkpoint_path=tmp_path / "s.ckpt")  # fmt: skip
    assert stopped["reached_threshold"] and stopped["epochs_run"] < 30  # the CE stop fires early here
    fixed = _train(tmp_path, data, epochs=30, stop_loss=None, snapshot_dir=tmp_path / "m_path")
    assert fixed["epochs_run"] == 30 and len(fixed["history"]) == 30 and fixed["protocol"] == "fixed_epochs"
    assert fixed["reached_threshold"] is None and fixed["stop_loss"] is None
    # the same run up to the stop epoch: the budget only adds epochs, it changes none
    assert fixed["history"][: stopped["epochs_run"]] == stopped["history"]
    assert all("full_loss" in h for h in fixed["history"]) and fixed["train_loss"] == fixed["history"][-1]["full_loss"]
    # its path goes on below the stop level the CE-stop run ended at
    assert min(s["threshold"] for s in fixed["snapshots"]) < 1e-2
    assert [s["threshold"] for s in fixed["snapshots"]] == snapshots.levels(None)[: len(fixed["snapshots"])]


def test_fixed_epoch_run_refuses_a_ce_stop_runs_checkpoint(tmp_path, one_thread, monkeypatch):
    from flatscape.core import train as core_train

    data = _write_dataset(tmp_path / "d.npz")
    real, calls = core_train.save_checkpoint, []

    def killed_after_two(path, state):
        real(path, state)
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(core_train, "save_checkpoint", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, data, epochs=10, stop_loss=1e-12)  # a CE-stop run of the row, killed at epoch 2
    monkeypatch.setattr(core_train, "save_checkpoint", real)
    before = (tmp_path / "m.ckpt").read_bytes()
    with pytest.raises(ForeignRunError, match="other settings"):
        _train(tmp_path, data, epochs=10, stop_loss=None)  # the same row's fixed-epoch run, same paths
    assert (tmp_path / "m.ckpt").read_bytes() == before  # neither continued nor overwritten


def test_levels_of_a_fixed_epoch_run_go_below_any_stop():
    assert snapshots.levels(None)[-1] == 1e-10 and snapshots.levels(None)[:6] == snapshots.levels(1e-6)


def _rows(cfg):
    return cfg["ch3"]["minima"]["rows"]


def test_a_row_with_both_protocols_or_neither_is_refused_by_name():
    cfg = preset("quick")
    both = copy.deepcopy(cfg)
    _rows(both)[0].update(protocol="fixed_epochs", stop_loss=1e-6, arm="fixed")
    with pytest.raises(ConfigError, match=r"digits-mnist_fc-fixed\): protocol fixed_epochs .* also sets stop_loss"):
        validate_config(both)
    neither = copy.deepcopy(cfg)
    _rows(neither)[1].update(stop_loss=None)
    with pytest.raises(ConfigError, match=r"digits-lenet\): protocol ce_stop needs a CE stop level"):
        validate_config(neither)
    twice = copy.deepcopy(cfg)
    _rows(twice).append(copy.deepcopy(_rows(twice)[0]) | {"protocol": "fixed_epochs"})
    with pytest.raises(ConfigError, match=r"digits-mnist_fc repeats; set `arm`"):
        validate_config(twice)
    bad_arm = copy.deepcopy(cfg)
    _rows(bad_arm)[0]["arm"] = "Fixed 256"
    with pytest.raises(ConfigError, match="arm"):
        validate_config(bad_arm)


def test_protocol_presets_hold_both_protocols_side_by_side():
    for name, arms in (("table37_protocols", ("fixed200",)), ("table37_protocols_gpu", ("fixed256", "fixed200"))):
        cfg = validate_config(preset(name))
        rows = {minima_row_id(r): r for r in _rows(cfg)}
        for net in ("mnist_fc", "lenet"):
            assert rows[f"mnist-{net}"]["protocol"] == "ce_stop"
            assert (rows[f"mnist-{net}"]["small"]["batch_size"], rows[f"mnist-{net}"]["large"]["batch_size"]) == (200, 5000)
            for arm in arms:
                small = int(arm.removeprefix("fixed"))
                r = rows[f"mnist-{net}-{arm}"]
                assert r["protocol"] == "fixed_epochs" and "stop_loss" not in r
                assert (r["small"]["batch_size"], r["large"]["batch_size"]) == (small, 5000)
                assert r["small"]["epochs"] == r["large"]["epochs"] == 200
    # the quick preset's toy cousin runs in CI
    quick = validate_config(preset("quick"))
    assert any(r["protocol"] == "fixed_epochs" for r in _rows(quick))


def _fake_protocol_runs():
    rows = []
    for row, protocol, flat in (("mnist-mnist_fc", "ce_stop", 1.0), ("mnist-mnist_fc-fixed256", "fixed_epochs", 0.1)):
        for batch_size, factor in ((200 if protocol == "ce_stop" else 256, 1.0), (5000, 4.0)):
            for seed in range(2):
                rows.append({"dataset": "mnist", "network": "mnist_fc", "row": row, "protocol": protocol,
                             "batch_size": batch_size, "seed": seed, "epochs_run": 200, "train_loss": 1e-7,
                             "reached_threshold": None if protocol == "fixed_epochs" else True,
                             "train_accuracy": 1.0, "test_accuracy": 0.98, "flatness_loss": 0.5 * factor,
                             "riemannian": flat * factor, "euclidean": 1.0, "normalised": 1.0})  # fmt: skip
    return tables.add_conventions(pd.DataFrame(rows))


def test_every_convention_is_printed_beside_the_raw_value_per_protocol():
    t = tables.table_3_7(_fake_protocol_runs())
    assert list(t["row"]) == ["mnist-mnist_fc"] * 2 + ["mnist-mnist_fc-fixed256"] * 2
    small, large = t.iloc[0], t.iloc[1]
    # L = 0.5 small, 2.0 large: lambda / (2 + 2L) = 1 / 3 and 4 / 6
    assert small["lambda_over_2_2L"] == f"{1 / 3:.4g} ± 0"
    assert small["eps2_lambda_over_2_2L"] == f"{1e-6 / 3:.4g} ± 0"
    assert large["large_small_ratio_riemannian"] == pytest.approx(4.0)
    assert large["large_small_ratio_lambda_over_2_2L"] == pytest.approx(2.0)
    assert large["large_small_ratio_eps2_lambda_over_2_2L"] == pytest.approx(2.0)  # eps cancels in a ratio
    assert t.iloc[2]["reached_threshold"] == "n/a (fixed epochs)" and t.iloc[2]["protocol"] == "fixed_epochs"
    assert small["epochs"] == "200" and small["train_ce"].startswith("1e-07")
    # the thesis's values only where its batch size ran
    assert t.iloc[0]["thesis_spectral_norm"] == "0.00086 ± 0.0012" and t.iloc[2]["thesis_spectral_norm"] == ""


def test_path_table_adds_each_protocols_endpoint(tmp_path):
    runs = _fake_protocol_runs()
    paths, pairs = [], []
    for r in runs.to_dict("records"):
        folder = tmp_path / r["row"]
        snap = {k: r[k] for k in ("dataset", "network", "batch_size", "seed", "protocol")}
        snap |= {"threshold": 0.01, "reached": True, "epoch": 5, "train_loss": 0.005, "train_accuracy": 1.0,
                 "test_accuracy": 0.97, "flatness_loss": 0.005, "riemannian": 10.0 * r["riemannian"], "euclidean": 1.0,
                 "normalised": 1.0}  # fmt: skip
        paths.append(folder / f"b{r['batch_size']}_seed{r['seed']}_path" / "flatness_ce1e-02.json")
        save_json(paths[-1], snap)
        metrics, flat = folder / f"b{r['batch_size']}_seed{r['seed']}.json", folder / f"b{r['batch_size']}_seed{r['seed']}_f.json"
        save_json(metrics, {k: r[k] for k in ("dataset", "network", "batch_size", "seed", "protocol", "epochs_run",
                                              "train_loss", "train_accuracy", "test_accuracy", "reached_threshold")})
        save_json(flat, {k: r[k] for k in ("flatness_loss", "riemannian", "euclidean", "normalised")})
        pairs.append((metrics, flat))
    out = tables.path_tables(paths, pairs)
    t = out["table_3_path"]
    assert list(zip(t["row"], t["point"])) == [("mnist-mnist_fc", "CE < 1e-02"), ("mnist-mnist_fc", "end"),
                                               ("mnist-mnist_fc-fixed256", "CE < 1e-02"), ("mnist-mnist_fc-fixed256", "end")]  # fmt: skip
    end = t.iloc[3]
    assert end["protocol"] == "fixed_epochs" and end["large_small_ratio_riemannian"] == pytest.approx(4.0)
    assert end["epoch_small"] == 200 and end["train_ce_large"] == pytest.approx(1e-7)
    assert math.isnan(end["threshold"]) and len(out["runs"]) == 16


def test_the_conventions_that_carry_the_ratio_are_invariant_under_rescaling(tmp_path, one_thread):
    """lambda / (2 + 2L) and eps^2 lambda / (2 + 2L) move with neither T_lambda (the Riemannian
    lambda_max and L are invariant) while the Euclidean value does."""
    data = _write_dataset(tmp_path / "d.npz")
    _train(tmp_path, data)
    out = _measure(tmp_path, data, dtype="float64", tol=1e-8)
    runs = tables.add_conventions(pd.DataFrame([out]))
    for c in ("lambda_over_2_2L", "eps2_lambda_over_2_2L"):
        assert runs[f"{c}_rescaled"].iloc[0] == pytest.approx(runs[c].iloc[0], rel=1e-6)
    assert abs(out["euclidean_rescaled"] / out["euclidean"] - 1) > 1e-3
    # the loss itself, L, is unchanged by T_lambda (so is lambda, checked elsewhere)
    from flatscape.ch3.train import load_minimum
    from flatscape.core.datasets import load
    from flatscape.ch3.measure import flatness_data

    model = load_minimum(tmp_path / "m.pt").double()
    x, y = flatness_data(load(data), 80, torch.device("cpu"))
    scaled = rescale(model, out["lambdas"])
    with torch.no_grad():
        assert F.cross_entropy(scaled(x.double()), y).item() == pytest.approx(F.cross_entropy(model(x.double()), y).item(), rel=1e-9)
    assert riemannian_spectral_norm  # the measure the conventions are built on


def test_a_killed_fixed_epoch_run_resumes_to_the_same_weights_and_snapshots(tmp_path, one_thread, monkeypatch):
    """Issue 29: a fixed-epoch run cut off mid-way (a session ending) and started again ends as an
    uninterrupted run does: the same network, the same history and the same snapshot files."""
    from flatscape.core import train as core_train

    data = _write_dataset(tmp_path / "d.npz")
    whole = _train(tmp_path / "whole", data, epochs=40, stop_loss=None, optimiser=SLOW, model_path=tmp_path / "w.pt",
                   metrics_path=tmp_path / "w.json", checkpoint_path=tmp_path / "w.ckpt",
                   snapshot_dir=tmp_path / "w_path")  # fmt: skip
    assert len(whole["snapshots"]) >= 3  # the path crosses several levels, some after the kill below
    real, calls = core_train.save_checkpoint, []

    def killed_at_the_ninth_checkpoint(path, state):
        real(path, state)
        calls.append(path)
        if len(calls) == 9:
            raise KeyboardInterrupt

    monkeypatch.setattr(core_train, "save_checkpoint", killed_at_the_ninth_checkpoint)
    paths = dict(model_path=tmp_path / "k.pt", metrics_path=tmp_path / "k.json", checkpoint_path=tmp_path / "k.ckpt",
                 snapshot_dir=tmp_path / "k_path")  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "killed", data, epochs=40, stop_loss=None, optimiser=SLOW, **paths)
    assert (tmp_path / "k.ckpt").exists() and not (tmp_path / "k.pt").exists()
    taken_before = sorted(p.name for p in (tmp_path / "k_path").glob("ce_*.pt"))
    assert 0 < len(taken_before) < len(whole["snapshots"])  # killed part-way along the path
    monkeypatch.setattr(core_train, "save_checkpoint", real)
    resumed = _train(tmp_path / "killed", data, epochs=40, stop_loss=None, optimiser=SLOW, **paths)
    assert resumed["history"] == whole["history"] and resumed["snapshots"] == whole["snapshots"]
    a, b = (torch.load(p, weights_only=True) for p in (tmp_path / "w.pt", tmp_path / "k.pt"))
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    for snap in whole["snapshots"]:
        a, b = (torch.load(tmp_path / d / snap["file"], weights_only=True) for d in ("w_path", "k_path"))
        assert a.keys() == b.keys() and all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
        assert {k: v for k, v in a.items() if k != "state_dict"} == {k: v for k, v in b.items() if k != "state_dict"}


def test_a_data_size_beyond_the_data_set_is_refused_naming_the_row():
    cfg = validate_config(preset("table37_datasize"))
    rows = _rows(cfg)
    assert sorted(r["train_size"] for r in rows) == [1000, 2000, 5000, 10000, 20000, 50000]
    assert all(r["protocol"] == "fixed_epochs" and r["flatness_samples"] == r["train_size"] for r in rows)
    bad = copy.deepcopy(preset("table37_datasize"))
    _rows(bad)[1].update(train_size=70_000, flatness_samples=70_000)
    with pytest.raises(ConfigError, match=r"mnist-mnist_fc-fixed200_n20000\): train_size 70000 exceeds the 60000 training images of mnist"):
        validate_config(bad)
