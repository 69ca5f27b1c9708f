"""Thesis Sec. 3.4.2 tables and figure on tiny settings: layout and invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flatscape.core.flatness import layers
from flatscape.ch3.invariance import (
    C1_LAMBDAS,
    F1_LAMBDAS,
    euclidean_vs_riemannian_table,
    figure_3_1,
    format_lambdas,
    simulation_network,
    synthetic_data,
    table_3_1,
    table_3_2,
    table_3_3,
)


pytestmark = pytest.mark.usefixtures("one_thread")

TABLE_COLUMNS = [
    "lambda",
    "relative_difference",
    "thesis_relative_difference",
    "relative_difference_std",
    "relative_difference_lanczos_float64",
    "relative_difference_lanczos_float64_max",
    "spectral_norm_mean",
    "power_hvps_mean",
    "runs",
    "num_samples",
]


def test_thesis_lambdas_have_unit_product_and_match_the_networks():
    for lambdas in F1_LAMBDAS + C1_LAMBDAS:
        assert math.prod(lambdas) == 1
    assert all(len(lam) == len(layers(simulation_network("f1", seed=0))) for lam in F1_LAMBDAS)
    assert all(len(lam) == len(layers(simulation_network("c1", seed=0))) for lam in C1_LAMBDAS)
    assert format_lambdas(F1_LAMBDAS[1]) == "(100, 30, 1/3000)"


def test_synthetic_data_is_seeded_random_labelled_784_dim():
    x, y = synthetic_data(50, seed=3)
    x2, y2 = synthetic_data(50, seed=3)
    assert x.shape == (50, 1, 28, 28) and y.shape == (50,)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert int(y.min()) >= 0 and int(y.max()) <= 9 and len(torch.unique(y)) > 5
    assert not torch.equal(synthetic_data(50, seed=4)[0], x)


def test_table_3_1_matches_thesis():
    table = table_3_1()
    assert list(table["network"]) == ["F1", "C1"]
    assert table["matches_thesis"].all()
    assert list(table["parameters"]) == [784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10, 54814]


def test_table_3_2_layout_and_invariance():
    table = table_3_2(num_runs=1, num_samples=16, max_hvp=60)
    assert list(table.columns) == TABLE_COLUMNS
    assert list(table["lambda"]) == ["(5, 4, 1/20)", "(100, 30, 1/3000)"]
    assert list(table["thesis_relative_difference"]) == [1.7e-7, 7.17e-7]
    # Iterates at equivalent points match step by step, so even an unconverged solver is invariant.
    assert (table["relative_difference"] < 1e-5).all()  # float32 power method, as in the thesis
    assert (table["relative_difference_lanczos_float64_max"] < 1e-10).all()
    assert table["relative_difference_std"].isna().all()  # one run: no spread


def test_table_3_3_averages_runs():
    table = table_3_3(num_runs=2, num_samples=8, max_hvp=60)
    assert list(table["lambda"]) == ["(5, 4, 3, 2, 1/120)", "(50, 24, 30, 1/6, 1/6000)"]
    assert (table["runs"] == 2).all() and np.isfinite(table["relative_difference_std"]).all()
    assert (table["relative_difference_lanczos_float64_max"] < 1e-10).all()
    assert (table["spectral_norm_mean"] > 0).all()


def test_euclidean_moves_riemannian_does_not():
    table = euclidean_vs_riemannian_table(num_samples=8, trace_probes=3, tol=1e-10, max_hvp=60)
    assert list(table["network"]) == ["F1"] * 3 + ["C1"] * 3
    identity = table["lambda"].str.fullmatch(r"\((1, )+1\)")
    assert identity.sum() == 2
    assert (table.loc[identity, "euclidean_ratio"] == 1.0).all()
    moved = table[~identity]
    assert (np.abs(np.log(moved["euclidean_ratio"])) > 0.1).all()
    assert (np.abs(np.log(moved["euclidean_trace_ratio"])) > 0.1).all()
    assert (table["riemannian_relative_difference"] < 1e-10).all()
    assert (table["riemannian_trace_relative_difference"] < 1e-10).all()


def test_figure_3_1_writes_png_and_curves(tmp_path):
    path = tmp_path / "figure_3_1.png"
    curves = figure_3_1(path, num_runs=2, num_samples=100, max_hvp=200, power_tol=1e-6, lanczos_tol=1e-10)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(curves["method"]) == {"power", "lanczos"} and set(curves["run"]) == {0, 1}
    final = curves.groupby(["run", "method"])["relative_error"].last()
    assert (final.xs("lanczos", level="method") < 1e-12).all()
    assert (final.xs("power", level="method") < 1e-6).all()
    steps = curves.groupby(["run", "method"]).size()
    assert (steps.xs("lanczos", level="method") < steps.xs("power", level="method")).all()
