"""Flatness along the training path (issue 15): snapshots at each decade of the training CE,
their protection against another run's files, their measurement, table and figure."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_minima import _train, _write_dataset

from flatscape.ch3 import figures, measure, snapshots, tables
from flatscape.ch3.settings import PathMeasureSettings
from flatscape.core import train as core_train
from flatscape.core.datasets import load
from flatscape.core.flatness import riemannian_spectral_norm
from flatscape.core.train import ForeignRunError, evaluate
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import load_checkpoint, save_json

SLOW = {"name": "adam", "lr": 3e-4, "momentum": 0.9, "weight_decay": 0.0, "lr_decay": 0.0, "step_size": 0, "gamma": 1.0}


def _run(tmp_path, data, name="a", **kw):
    """A run of test_minima's easy problem to CE < 1e-3 (slowly enough to cross 1e-1, 1e-2, 1e-3
    at different epochs), its snapshots in <name>_path/."""
    paths = {"model_path": tmp_path / f"{name}.pt", "metrics_path": tmp_path / f"{name}.json",
             "checkpoint_path": tmp_path / f"{name}.ckpt", "snapshot_dir": tmp_path / f"{name}_path"}  # fmt: skip
    return _train(tmp_path, data, **{"epochs": 40, "stop_loss": 1e-3, "optimiser": SLOW, **paths, **kw})


def _measure_path(tmp_path, data, threshold, name="a", **kw):
    s = dict(threshold=threshold, samples=80, eps=None, method="lanczos", tol=1e-8, max_hvp=300, batch_size=None,
             dtype="float64", float64_below=None, warm_start=[], seed=0, device="cpu")  # fmt: skip
    s.update(kw)
    return measure.measure_snapshot(tmp_path / f"{name}.json", tmp_path / f"{name}_path", data,
                                    settings(PathMeasureSettings, s), device=torch.device("cpu"))  # fmt: skip


def test_levels_are_the_decades_down_to_the_stop_threshold():
    assert snapshots.levels(1e-6) == [0.1, 0.01, 0.001, 1e-4, 1e-5, 1e-6]
    assert snapshots.levels(3e-4) == [0.1, 0.01, 0.001] and snapshots.levels(0.5) == []
    assert snapshots.level_name(0.01) == "1e-02" and float(snapshots.level_name(1e-6)) == 1e-6


def test_training_saves_each_decade_crossing_without_changing_the_run(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    m = _run(tmp_path, data)
    plain = _train(tmp_path / "plain", data, epochs=40, stop_loss=1e-3, optimiser=SLOW, model_path=tmp_path / "p.pt",
                   metrics_path=tmp_path / "p.json", checkpoint_path=tmp_path / "p.ckpt")  # fmt: skip
    assert m["reached_threshold"] and plain["snapshots"] == []
    assert [s["threshold"] for s in m["snapshots"]] == [0.1, 0.01, 0.001]
    assert len({s["epoch"] for s in m["snapshots"]}) == 3  # three different points of the path
    for s in m["snapshots"]:
        first = next(h for h in m["history"] if h["full_loss"] < s["threshold"])
        assert (s["epoch"], s["full_loss"]) == (first["epoch"], first["full_loss"])
        saved = load_checkpoint(tmp_path / "a_path" / s["file"])
        assert saved["fingerprint"] == m["fingerprint"] and saved["epoch"] == s["epoch"]
    # the snapshots are extra files: the run itself is the one trained without them
    a, p = (torch.load(tmp_path / f, weights_only=True)["state_dict"] for f in ("a.pt", "p.pt"))
    assert all(torch.equal(a[k], p[k]) for k in a) and m["history"] == plain["history"]


def test_a_resumed_run_keeps_the_snapshots_of_before_the_kill(tmp_path, one_thread, monkeypatch):
    data = _write_dataset(tmp_path / "d.npz")
    whole = _run(tmp_path, data, name="whole")
    real, calls = core_train.save_checkpoint, []

    def killed_after_eight(path, state):
        real(path, state)
        calls.append(path)
        if len(calls) == 8:  # between the crossings of 1e-1 and 1e-2
            raise KeyboardInterrupt

    monkeypatch.setattr(core_train, "save_checkpoint", killed_after_eight)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, data)
    monkeypatch.setattr(core_train, "save_checkpoint", real)
    assert (tmp_path / "a.ckpt").exists() and [p.name for p in (tmp_path / "a_path").iterdir()] == ["ce_1e-01.pt"]
    resumed = _run(tmp_path, data)
    assert resumed["snapshots"] == whole["snapshots"]
    for s in whole["snapshots"]:
        w, r = (load_checkpoint(tmp_path / f"{n}_path" / s["file"])["state_dict"] for n in ("whole", "a"))
        assert all(torch.equal(w[k], r[k]) for k in w)


def test_another_runs_snapshots_fail_before_training_and_stay(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    _run(tmp_path, data)
    before = {p.name: p.read_bytes() for p in (tmp_path / "a_path").iterdir()}
    with pytest.raises(ForeignRunError, match="snapshot of a run with other settings.*delete"):
        _run(tmp_path, data, seed=4, model_path=tmp_path / "b.pt", metrics_path=tmp_path / "b.json",
             checkpoint_path=tmp_path / "b.ckpt")  # fmt: skip
    assert not (tmp_path / "b.ckpt").exists() and not (tmp_path / "b.pt").exists()  # nothing trained
    assert {p.name: p.read_bytes() for p in (tmp_path / "a_path").iterdir()} == before


def test_another_runs_checkpoint_fails_before_training_and_stays(tmp_path, one_thread, monkeypatch):
    data = _write_dataset(tmp_path / "d.npz")
    real = core_train.save_checkpoint

    def killed(path, state):
        real(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(core_train, "save_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, data)
    monkeypatch.setattr(core_train, "save_checkpoint", real)
    before = (tmp_path / "a.ckpt").read_bytes()
    with pytest.raises(ForeignRunError, match="other settings"):
        _run(tmp_path, data, name="a", seed=4, snapshot_dir=tmp_path / "b_path")
    assert (tmp_path / "a.ckpt").read_bytes() == before and not (tmp_path / "a.pt").exists()


def test_measure_snapshot_measures_the_saved_network(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    m = _run(tmp_path, data)
    r = _measure_path(tmp_path, data, 0.01, eps=1e-3)
    entry = snapshots.find_snapshot(m, 0.01)
    assert r["reached"] and r["epoch"] == entry["epoch"] and r["train_loss"] == entry["full_loss"] < 0.01
    net = measure.load_network(tmp_path / "a_path" / entry["file"])[0]
    d = load(data)
    assert r["test_accuracy"] == evaluate(net, torch.from_numpy(d.x_test), torch.from_numpy(d.y_test))[1]
    batch = measure.flatness_data(d, 80, torch.device("cpu"))
    direct = riemannian_spectral_norm(net.double(), torch.nn.functional.cross_entropy, batch, tol=1e-8, dtype=torch.float64)
    assert r["riemannian"] == pytest.approx(direct.value, rel=1e-6) and r["euclidean"] > 0
    assert r["normalised"] == pytest.approx(1e-6 * r["riemannian"] / (2 + 2 * r["flatness_loss"]), rel=1e-12)
    assert "riemannian_rescaled" not in r  # along the path, no rescaled re-measurement
    never = _measure_path(tmp_path, data, 1e-9)
    assert never["reached"] is False and "riemannian" not in never and never["seed"] == 3


def test_measure_snapshot_refuses_another_runs_file(tmp_path, one_thread):
    data = _write_dataset(tmp_path / "d.npz")
    m = _run(tmp_path, data)
    _run(tmp_path, data, name="b", seed=4)
    name = m["snapshots"][0]["file"]
    (tmp_path / "a_path" / name).write_bytes((tmp_path / "b_path" / name).read_bytes())
    with pytest.raises(ForeignRunError, match="not the snapshot of the run"):
        _measure_path(tmp_path, data, m["snapshots"][0]["threshold"])


def _fake_path_runs(tmp_path):
    paths = []
    for batch_size, flat, acc in ((16, 1.0, 0.99), (1024, 10.0, 0.97)):
        for seed in range(3):
            for threshold in (0.1, 0.01):
                reached = not (batch_size == 1024 and seed == 2 and threshold == 0.01)
                row = {"dataset": "digits", "network": "mnist_fc", "batch_size": batch_size, "seed": seed,
                       "threshold": threshold, "reached": reached}  # fmt: skip
                if reached:
                    row |= {"epoch": 3, "train_loss": threshold / 2, "train_accuracy": 1.0,
                            "test_accuracy": acc - 0.001 * seed, "riemannian": flat * (1 + seed) / threshold,
                            "euclidean": 2 * flat, "normalised": flat / 2, "flatness_loss": threshold / 2}  # fmt: skip
                paths.append(tmp_path / f"{batch_size}_{seed}_{threshold}.json")
                save_json(paths[-1], row)
    return paths


def test_path_table_ratios_reached_counts_and_kendall(tmp_path):
    out = tables.path_tables(_fake_path_runs(tmp_path))
    t = out["table_3_path"]
    assert list(t["threshold"]) == [0.1, 0.01] and len(out["runs"]) == 12
    first, second = t.iloc[0], t.iloc[1]
    assert (first["reached_small"], first["reached_large"]) == ("3/3", "3/3") and second["reached_large"] == "2/3"
    assert first["large_small_ratio_riemannian"] == pytest.approx(10.0)
    assert second["large_small_ratio_riemannian"] == pytest.approx(10.0 * 1.5 / 2.0)  # seeds 0, 1 of the large batch
    assert first["riemannian_small"] == pytest.approx(2.0 / 0.1)
    assert first["tau_test_accuracy_riemannian"] < 0  # flatter small-batch runs generalise better here
    assert math.isnan(first["tau_test_accuracy_euclidean"]) or first["tau_test_accuracy_euclidean"] < 0


def test_path_figure_draws_every_run_to_its_minimum(tmp_path):
    runs = tables.path_tables(_fake_path_runs(tmp_path))["runs"]
    ends = runs[runs["threshold"] == 0.1].assign(point="end", threshold=math.nan, train_loss=1e-4, riemannian=100.0)
    pd.concat([runs, ends]).to_csv(tmp_path / "path.csv", index=False)
    out = figures.path_figure(tmp_path / "path.csv", tmp_path / "f.png")
    assert out.stat().st_size > 1000 and np.isfinite(runs["riemannian"].dropna()).all()
