"""The ranking of measures on a population of minima (flatscape.ch3.ranking): Kendall tau,
Jiang et al.'s granulated tau, populations too small to rank, and the files it reads."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from scipy.stats import kendalltau

from flatscape.ch3.ranking import (
    GeneralizationSettings,
    collect_population,
    granulated_tau,
    plot_measures,
    ranking_table,
    varying,
)
from flatscape.pipeline.config import ConfigError, load_config, settings, validate_config


def _population(network: str = "mnist_fc") -> pd.DataFrame:
    """Two batch sizes x three seeds; the gap grows with batch size and seed; measure ``good``
    follows it, ``split`` follows batch size but runs against the seed."""
    rows = []
    for b, batch_size in enumerate((16, 1024)):
        for seed in range(3):
            gap = 10 * b + seed
            rows.append({"dataset": "digits", "network": network, "protocol": "ce_stop", "batch_size": batch_size,
                         "lr": 1e-3, "seed": seed, "batch": ("small", "large")[b], "train_accuracy": 1.0,
                         "test_accuracy": 1.0 - gap / 100, "generalisation_gap": gap / 100,
                         "riemannian": 1.0 + gap, "euclidean": 10 * b - seed, "normalised": 5.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_granulated_tau_over_each_varying_hyperparameter():
    runs = _population()
    assert varying(runs) == ["batch_size", "seed"]
    assert granulated_tau(runs, "riemannian", ["batch_size", "seed"]) == {"batch_size": 1.0, "seed": 1.0}
    # within each seed the large batch is sharper (+1); within each batch size the seed runs against the gap (-1)
    assert granulated_tau(runs, "euclidean", ["batch_size", "seed"]) == {"batch_size": 1.0, "seed": -1.0}


def test_ranking_table_taus_and_psi():
    table = ranking_table(_population()).set_index("measure")
    good, split = table.loc["Riemannian lambda_max (thesis)"], table.loc["Euclidean lambda_max"]
    assert good["tau_generalisation_gap"] == pytest.approx(1.0) and good["tau_test_accuracy"] == pytest.approx(-1.0)
    assert good["psi"] == pytest.approx(1.0)
    runs = _population()
    assert split["tau_generalisation_gap"] == pytest.approx(kendalltau(runs["euclidean"], runs["generalisation_gap"])[0])
    assert split["granulated_seed"] == -1.0 and split["psi"] == pytest.approx(0.0)
    # a constant measure has no tau (not a fake 0)
    assert math.isnan(table.loc["normalised bound (thesis Table 3.7)", "tau_generalisation_gap"])
    assert list(table.index)[0] == "Riemannian lambda_max (thesis)"  # ranked by tau with the gap


def test_fewer_than_three_minima_give_a_row_that_says_so():
    runs = pd.concat([_population(), _population("lenet").iloc[:2]], ignore_index=True)
    table = ranking_table(runs)
    small = table[table["group"] == "digits (sklearn) / LeNet"]
    assert len(small) == 3 and small["note"].str.contains("fewer than 3 minima").all()
    assert small["tau_generalisation_gap"].isna().all()
    assert set(table["group"]) == {"digits (sklearn) / Fully-Connected", "digits (sklearn) / LeNet", "pooled"}
    pooled = table[table["group"] == "pooled"]
    assert (pooled["runs"] == 8).all() and "granulated_network" in table.columns


def test_collect_population_joins_the_three_files(tmp_path):
    triples = []
    for batch, (bs, train, test) in {"small": (16, 1.0, 0.97), "large": (1024, 1.0, 0.93)}.items():
        d = tmp_path / "digits-lenet"
        d.mkdir(exist_ok=True)
        paths = [d / f"{batch}_seed0{s}.json" for s in ("", "_flatness", "_measures")]
        paths[0].write_text(json.dumps({"dataset": "digits", "network": "lenet", "batch_size": bs, "seed": 0,
                                        "train_accuracy": train, "test_accuracy": test, "train_loss": 1e-3}))  # fmt: skip
        paths[1].write_text(json.dumps({"riemannian": 2.0, "euclidean": 3.0, "normalised": 1.0}))
        paths[2].write_text(json.dumps({"hyperparameters": {"lr": 1e-3, "protocol": "ce_stop", "seed": 0, "batch_size": bs},
                                        "measures": {"fisher_rao_norm": {"value": 7.0}}}))  # fmt: skip
        triples.append(tuple(paths))
    runs = collect_population(triples)
    assert list(runs["batch"]) == ["small", "large"] and list(runs["row"]) == ["digits-lenet"] * 2
    assert runs["generalisation_gap"].tolist() == pytest.approx([0.03, 0.07])
    assert runs["fisher_rao_norm"].tolist() == [7.0, 7.0] and runs["lr"].tolist() == [1e-3, 1e-3]
    out = plot_measures(runs, tmp_path / "fig.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_measures_config_defaults_and_bad_values(tmp_path):
    from conftest import REPO

    cfg = load_config(REPO / "config.yaml")
    m = cfg["ch3"]["minima"]["measures"]
    assert m["enabled"] and len(m["measures"]) == 7 and m["rho"] > 0 and m["pac_bayes_criterion"] == "error"
    for key, value in (("rho", 0), ("steps", 0), ("average_samples", -1), ("pac_bayes_samples", 0)):
        bad = json.loads(json.dumps(cfg))
        bad["ch3"]["minima"]["measures"][key] = value
        with pytest.raises(ConfigError, match=key):
            validate_config(bad)
    params = {k: v for k, v in m.items() if k != "enabled"} | {
        "samples": 10, "batch_size": None, "dtype": "float32", "float64_below": None, "seed": 0, "device": "cpu",
        "hyperparameters": {"dataset": "digits", "batch_size": 16}}  # fmt: skip
    s = settings(GeneralizationSettings, params)
    assert s.hyperparameters["batch_size"] == 16 and isinstance(s.measures, tuple)
