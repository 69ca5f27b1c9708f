"""Tests for flatscape.ch2 (thesis Chapter 2), on tiny synthetic problems."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import deep_merge, preset
from flatscape.ch2 import descent, figures, gradients as gr, model, studies, tables
from flatscape.ch2.settings import DataSettings, FigureSettings, Table21Settings, Table22Settings
from flatscape.pipeline.config import ConfigError, settings, validate_config

DATA = {"n": 8, "num_signals": 40, "a": 1.0, "b": 10.0, "seed": 0, "device": "cpu", "dtype": "float64"}


def _data(**overrides) -> DataSettings:
    return settings(DataSettings, {**DATA, **overrides})


def _study(h_values, p_values, rules, *, num_points: int, max_elements: int = 2**24, **data) -> Table21Settings:
    """Table 2.1 settings whose ``rules`` are ``rules`` in that order (the first is the reported one)."""
    return Table21Settings(_data(**data), tuple(h_values), tuple(p_values), num_points, rules[0], tuple(rules[1:]), max_elements)


def _tiny(h: int = 24, n: int = 8, p: float = 0.3, num_signals: int = 60, seed: int = 3, dtype=torch.float64):
    return model.generate_data(n, h, p, num_signals, seed=seed, dtype=dtype)


def _points(data, radius: float, count: int, seed: int = 0) -> torch.Tensor:
    return model.perturbed_points(data.dictionary, radius, model.make_generator(seed, 99), count)


def _study_points(study: Table21Settings, h: int, p: float) -> tuple[model.SparseCodingData, torch.Tensor]:
    """The data and the points ``gradient_study`` draws for one cell, drawn here independently."""
    data = study.data.generate(h, p, torch.device("cpu"))
    generator = model.cell_generator(study.data.seed, model.STREAM_POINTS, h, p)
    return data, model.perturbed_points(data.dictionary, model.delta_radius(h, p) / 2, generator, study.num_points)


# ----------------------------------------------------------------------------- data
def test_codes_have_k_distinct_support_entries_in_range_and_signals_equal_dictionary_times_codes():
    data = _tiny()
    assert data.k == model.support_size(24, 0.3) == round(24**0.3)
    assert data.support.shape == (60, data.k)
    assert all(len(set(row.tolist())) == data.k for row in data.support)
    assert float(data.values.min()) >= 1.0 and float(data.values.max()) <= 10.0
    torch.testing.assert_close(data.signals, data.dictionary @ data.dense_codes())
    torch.testing.assert_close(data.dictionary.norm(dim=0), torch.ones(24, dtype=torch.float64))


def test_coherence_matches_bruteforce_and_xi_is_its_log_exponent():
    data = _tiny()
    a = data.dictionary.numpy()
    brute = max(abs(a[:, i] @ a[:, j]) for i in range(24) for j in range(24) if i != j)
    assert data.coherence == pytest.approx(brute, rel=1e-12)
    assert data.coherence == pytest.approx(24 ** (-data.xi), rel=1e-12)
    report = model.coherence_report([24, 48], n=8, seed=3)
    assert report.loc[0, "coherence"] == pytest.approx(data.coherence)
    assert report.loc[0, "xi"] == pytest.approx(data.xi) and report.loc[0, "mu"] == pytest.approx(data.coherence * math.sqrt(8))
    assert report.loc[1, "coherence"] == pytest.approx(model.coherence(model.generate_dictionary(8, 48, seed=3, dtype=torch.float64)))


def test_data_is_reproducible_and_the_dictionary_is_shared_across_p_but_not_seeds():
    a, b = _tiny(p=0.3), _tiny(p=0.3)
    torch.testing.assert_close(a.signals, b.signals)
    other_p = _tiny(p=0.5)
    torch.testing.assert_close(a.dictionary, other_p.dictionary)
    assert not torch.equal(a.dictionary, _tiny(seed=4).dictionary)


def test_float32_data_equals_float64_data_rounded():
    d64, d32 = _tiny(dtype=torch.float64), _tiny(dtype=torch.float32)
    torch.testing.assert_close(d32.signals, d64.signals.float())
    assert torch.equal(d32.support, d64.support)


def test_perturbed_points_sit_exactly_at_the_radius_columnwise():
    data = _tiny()
    points = _points(data, 0.37, 5)
    distances = (points - data.dictionary.T).norm(dim=-1)
    torch.testing.assert_close(distances, torch.full((5, 24), 0.37, dtype=torch.float64))
    assert float(gr.columnwise_distance(points[0], data.dictionary)) == pytest.approx(0.37)


# ----------------------------------------------------------------------------- bias readings
def test_theorem_bias_is_the_printed_formula_and_unknown_rules_are_rejected():
    m1, h, p, coh = 5.5, 256, 0.1, 0.55
    delta = 256 ** (-0.2)
    assert model.bias_value("theorem", h=h, p=p, n=50, m1=m1, coherence=coh) == pytest.approx(2 * m1 * h**p * (delta + coh))
    assert model.bias_value("mu_is_coherence", h=h, p=p, n=50, m1=m1, coherence=coh) == pytest.approx(
        2 * m1 * h**p * (delta + coh / math.sqrt(50))
    )
    assert model.bias_value("zero", h=h, p=p, n=50, m1=m1, coherence=coh) == 0.0
    assert set(model.BIAS_RULES) >= {"theorem", "mu_is_coherence", "no_coherence", "half", "quarter", "radius", "zero"}
    with pytest.raises(ValueError, match="unknown bias rule"):
        model.bias_value("nope", h=h, p=p, n=50, m1=m1, coherence=coh)


def test_radius_bias_matches_a_hand_computation():
    # h = 256 = 2^8, p = 0.1: k = h^p = 2^0.8 = 1.7411011..., delta = h^(-2p) = 2^-1.6 = 0.3298770...,
    # delta/2 = 0.1649385..., coherence/sqrt(n) = 0.55 / sqrt(50) = 0.0777817...;
    # eps = 2 m1 k (delta/2 + coherence/sqrt(n)) = 2 * 5.5 * 1.7411011 * 0.2427202 = 4.6486052.
    assert model.bias_value("radius", h=256, p=0.1, n=50, m1=5.5, coherence=0.55) == pytest.approx(4.6486052, abs=1e-7)
    # on real data m1 = (a + b) / 2 and the coherence is the dictionary's
    data = _tiny(h=24, n=8, p=0.3)
    k, delta = 24**0.3, 24 ** (-0.6)
    assert model.data_bias("radius", data) == pytest.approx(2 * 5.5 * k * (delta / 2 + data.coherence / math.sqrt(8)), rel=1e-14)


def test_a_bias_above_every_preactivation_silences_the_layer_with_zero_gradient():
    data = _tiny()
    w = _points(data, 0.2, 1)[0]
    eps = float((w @ data.signals).max()) + 1.0
    loss, grad = gr.loss_and_gradient(w, data.signals, eps)
    assert float(grad.abs().max()) == 0.0
    assert float(loss) == pytest.approx(0.5 * float(data.signals.square().sum()) / data.num_signals)


# ----------------------------------------------------------------------------- loss and gradient
@pytest.mark.parametrize("method", ["dense", "sparse"])
@pytest.mark.parametrize("eps_kind", ["scalar", "vector"])
def test_closed_form_gradient_matches_autograd_in_float64(method, eps_kind):
    data = _tiny()
    w = _points(data, 0.4, 3).requires_grad_()
    eps = 2.0 if eps_kind == "scalar" else torch.linspace(0.5, 4.0, 24, dtype=torch.float64)
    loss = gr.autoencoder_loss(w, data.signals, eps)
    (expected,) = torch.autograd.grad(loss.sum(), w)
    closed_loss, closed = gr.loss_and_gradient(w.detach(), data.signals, eps, method=method)
    torch.testing.assert_close(closed_loss, loss.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(closed, expected, rtol=1e-10, atol=1e-10)
    assert float(expected.abs().max()) > 0  # the check is not vacuous


def test_gradient_matches_the_per_signal_formula_of_section_2_5():
    data = _tiny(num_signals=7)
    w = _points(data, 0.3, 1)[0]
    eps = 1.5
    _, grad = gr.loss_and_gradient(w, data.signals, eps)
    expected = torch.zeros_like(w)
    for y in data.signals.T:
        pre = w @ y - eps
        f = w.T @ torch.relu(pre) - y
        for i in range(w.shape[0]):
            if pre[i] > 0:  # Th(W_i^T y - eps) [(W_i^T y - eps) I + y W_i^T] f
                expected[i] += (pre[i] * torch.eye(len(y), dtype=y.dtype) + torch.outer(y, w[i])) @ f
    torch.testing.assert_close(grad, expected / 7)


def test_loss_is_half_the_mean_squared_reconstruction_error():
    data = _tiny(num_signals=5)
    w = _points(data, 0.3, 1)[0]
    direct = np.mean([0.5 * float((w.T @ torch.relu(w @ y - 0.7) - y).square().sum()) for y in data.signals.T])
    assert float(gr.autoencoder_loss(w, data.signals, 0.7)) == pytest.approx(direct, rel=1e-12)


def test_gradient_matches_finite_differences_of_the_loss():
    data = _tiny()
    w = _points(data, 0.3, 1)[0]
    eps = 1.0
    _, grad = gr.loss_and_gradient(w, data.signals, eps)
    direction = torch.randn(w.shape, generator=torch.Generator().manual_seed(1), dtype=w.dtype)
    step = 1e-6
    numeric = (gr.autoencoder_loss(w + step * direction, data.signals, eps) - gr.autoencoder_loss(w - step * direction, data.signals, eps)) / (2 * step)
    assert float(numeric) == pytest.approx(float((grad * direction).sum()), rel=1e-6)


def test_float32_gradient_agrees_with_float64_on_a_sample():
    d64 = model.generate_data(50, 256, 0.1, 500, seed=0, dtype=torch.float64)
    w64 = model.perturbed_points(d64.dictionary, model.delta_radius(256, 0.1) / 2, model.make_generator(0, 7), 2)
    eps = model.data_bias("radius", d64)
    _, g64 = gr.loss_and_gradient(w64, d64.signals, eps)
    _, g32 = gr.loss_and_gradient(w64.float(), d64.signals.float(), eps)
    assert float((g32.double() - g64).norm() / g64.norm()) < 1e-4


def test_unknown_gradient_method_is_rejected():
    data = _tiny()
    with pytest.raises(ValueError, match="method"):
        gr.loss_and_gradient(data.dictionary.T, data.signals, 0.0, method="fast")


def test_active_pairs_restrict_equals_fresh_pairs_for_the_larger_bias():
    data = _tiny()
    w = _points(data, 0.4, 2)
    product = w @ data.signals
    small, large = torch.tensor(1.0, dtype=w.dtype), torch.tensor(3.0, dtype=w.dtype)
    restricted = gr.ActivePairs.from_mask(product, product > small, small).restrict(large)
    fresh = gr.ActivePairs.from_mask(product, product > large, large)
    assert torch.equal(restricted.unit, fresh.unit) and torch.equal(restricted.signal, fresh.signal)
    torch.testing.assert_close(restricted.value, fresh.value)


def test_support_counts_match_a_bruteforce_count():
    data = _tiny()
    w = _points(data, 0.3, 2)
    eps = torch.tensor(2.0, dtype=w.dtype)
    product = w @ data.signals
    active = product > eps
    on = off = exact = 0
    for b in range(2):
        for s in range(data.num_signals):
            fired = set(torch.nonzero(active[b, :, s]).flatten().tolist())
            support = set(data.support[s].tolist())
            on, off, exact = on + len(fired & support), off + len(fired - support), exact + (fired == support)
    assert gr.ActivePairs.from_mask(product, active, eps).support_counts(data.support) == (on, off, exact)
    assert gr.dense_support_counts(active, data.support) == (on, off, exact)


# ----------------------------------------------------------------------------- Table 2.1 study
def test_gradient_study_paths_agree_and_norm_of_mean_never_exceeds_mean_of_norms():
    study = _study([24], [0.2, 0.5], ["zero", "quarter", "radius", "theorem"], num_points=6, num_signals=80, seed=1)
    fast = studies.gradient_study(study)
    # no candidate pruning, and the product path forced dense for every rule
    slow = studies.gradient_study(study, studies.StudyOptions(candidate_below=0.0, sparse_below=0.0))
    cols = ["grad_norm_of_mean", "grad_mean_of_norms", "loss_mean", "on_support_active", "off_support_silent", "exact_support"]
    np.testing.assert_allclose(fast[cols].to_numpy(), slow[cols].to_numpy(), rtol=1e-9, atol=1e-12)
    assert (fast["grad_norm_of_mean"] <= fast["grad_mean_of_norms"] + 1e-12).all()
    assert list(fast["rule"]) == ["zero", "quarter", "radius", "theorem"] * 2
    # every rule's bias is its formula at the cell's own coherence and m1 = (1 + 10) / 2
    expected = [model.bias_value(r, h=24, p=p, n=8, m1=5.5, coherence=c) for r, p, c in zip(fast["rule"], fast["p"], fast["coherence"])]
    np.testing.assert_allclose(fast["bias"], expected, rtol=1e-15)


@pytest.mark.parametrize("rule", ["zero", "quarter", "radius", "theorem"])
def test_gradient_study_is_deterministic_and_matches_a_direct_average(rule):
    study = _study([24], [0.3], ["radius", "zero", "quarter", "theorem"], num_points=4, num_signals=50, seed=2)
    a = studies.gradient_study(study)
    b = studies.gradient_study(dataclasses.replace(study, max_elements=24 * 50))  # one point per batch
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), rtol=1e-10)
    data, points = _study_points(study, 24, 0.3)
    eps = model.data_bias(rule, data)
    losses, grads = gr.loss_and_gradient(points, data.signals, eps, method="dense")
    row = a[a["rule"] == rule].iloc[0]
    assert row["grad_norm_of_mean"] == pytest.approx(float(grads.mean(0).norm(dim=1).mean()), rel=1e-10)
    assert row["grad_mean_of_norms"] == pytest.approx(float(grads.norm(dim=2).mean()), rel=1e-10)
    assert row["loss_mean"] == pytest.approx(float(losses.mean()), rel=1e-10)
    assert row["active_fraction"] == pytest.approx(float(((points @ data.signals) > eps).double().mean()), rel=1e-12)


def test_table_frames_carry_thesis_values_beside_ours():
    study = studies.gradient_study(_study([256], [0.5], ["radius"], num_points=2, n=50, num_signals=200))
    table = tables.table_2_1_frame(study, "radius")
    assert table.loc[0, "thesis_grad"] == 0.0343 and table.loc[0, "thesis_h_pow_p_minus_1"] == 0.0625
    assert table.loc[0, "h_pow_p_minus_1"] == pytest.approx(256**-0.5)
    assert table.loc[0, "ratio_to_thesis"] == pytest.approx(study.loc[0, "grad_norm_of_mean"] / 0.0343)
    support = tables.support_recovery_frame(study, "radius")
    assert support.loc[0, "theorem_bound"] == pytest.approx(1 - math.exp(-2 * 16 * 5.5**2 / 81))
    # at n = 50 the coherence is far above what Theorem 2.3.1 needs
    assert not model.support_hypothesis_holds(256, 0.5, study.loc[0, "coherence"], 1.0, 10.0)
    assert not support.loc[0, "hypothesis_holds"]
    assert support.loc[0, "exact_support"] == study.loc[0, "exact_support"]
    summary = tables.bias_reading_summary(study).set_index("statistic")
    for stat in ("grad_norm_of_mean", "grad_mean_of_norms", "grad_fro_over_h"):
        ratio = study.loc[0, stat] / 0.0343  # one cell, so the median is its own |log10| ratio
        assert summary.loc[stat, "median_abs_log10_ratio"] == pytest.approx(abs(math.log10(ratio)))
        assert summary.loc[stat, "geometric_mean_ratio"] == pytest.approx(ratio)
        assert summary.loc[stat, "cells_within_2x"] == int(0.5 <= ratio <= 2.0)


def test_reading_summary_and_closest_cell_scores_are_computed_from_the_ratios():
    study = pd.DataFrame(
        {
            "rule": ["a", "a", "a", "b", "b", "b"], "h": [256, 512, 1024] * 2, "p": [0.5] * 6,
            "thesis_grad": [0.0343, 0.0028, 0.0] * 2,
            "grad_norm_of_mean": [0.0686, 0.0056, 0.0, 0.0343, 0.1, 0.001], "grad_mean_of_norms": [0.07, 0.006, 0.0, 0.04, 0.1, 0.001],
            "grad_fro_over_h": [0.01, 0.001, 0.0, 0.01, 0.01, 0.001],
        }
    )
    summary = tables.bias_reading_summary(study)
    row = summary[(summary.rule == "a") & (summary.statistic == "grad_norm_of_mean")].iloc[0]
    assert row["median_abs_log10_ratio"] == pytest.approx(math.log10(2.0))
    assert row["geometric_mean_ratio"] == pytest.approx(2.0) and row["median_abs_log10_after_scale"] == pytest.approx(0.0, abs=1e-12)
    assert row["cells_within_2x"] == 2 and row["zero_cells_matched"] == 1
    closest = tables.closest_reading_per_cell(study)
    assert list(closest["closest_rule"]) == ["b", "a", "a|b"]
    assert closest.loc[1, "closest_ratio"] == pytest.approx(2.0)


def test_support_hypothesis_fails_at_n_50_and_holds_for_a_very_incoherent_dictionary():
    assert not model.support_hypothesis_holds(256, 0.1, 0.55, 1.0, 10.0)
    assert model.support_hypothesis_holds(10**12, 0.15, 1e-5, 1.0, 10.0)


def test_table_2_1_entry_reports_the_bias_rule_from_the_shared_study():
    study = _study([24], [0.3], ["radius", "theorem", "radius"], num_points=2)
    frames = studies.table_2_1(study)
    readings = frames["readings"]
    assert list(readings["rule"]) == ["radius", "theorem"]  # the reported rule once, first
    pd.testing.assert_frame_equal(frames["table"], tables.table_2_1_frame(readings, "radius"))
    pd.testing.assert_frame_equal(frames["coherence"], model.coherence_report([24], n=8, seed=0))
    assert set(tables.table_2_1_captions(study)) == set(frames)
    assert "2 points" in tables.table_2_1_captions(study)["table"]


# ----------------------------------------------------------------------------- Table 2.2
def test_gradient_descent_reaches_the_relative_tolerance_and_lowers_the_loss():
    data = _tiny(num_signals=80)
    w0 = _points(data, 3.0, 1)[0]
    for rule in ("bb", "armijo"):
        result = descent.gradient_descent(w0, data.signals, 0.0, dictionary=data.dictionary, rel_tol=1e-3, step_rule=rule)
        assert result.converged and result.grad_norms[-1] <= 1e-3 * result.grad_norms[0]
        assert result.losses[-1] < result.losses[0]
        assert result.distances[0] == pytest.approx(3.0)
        assert result.covered_percent == pytest.approx(100 * (1 - result.distances[-1] / 3.0))


def test_table_2_2_starts_at_h_over_5_delta_and_covers_what_the_descent_covers():
    settings_22 = Table22Settings(_data(), (24,), (0.1,), ("zero", "radius"), 0.2, 1e-2, 20000, "bb")
    df = descent.table_2_2(settings_22)
    assert list(df["rule"]) == ["zero", "radius"]
    assert df.loc[0, "initial_distance"] == pytest.approx(0.2 * 24 * 24 ** (-0.2))
    data = settings_22.data.generate(24, 0.1, torch.device("cpu"))
    start = model.perturbed_points(data.dictionary, 0.2 * 24 * 24 ** (-0.2), model.cell_generator(0, model.STREAM_START, 24, 0.1), 1)[0]
    result = descent.gradient_descent(start, data.signals, 0.0, dictionary=data.dictionary, rel_tol=1e-2)
    assert bool(df.loc[0, "converged"]) and df.loc[0, "covered_percent"] == pytest.approx(result.covered_percent, rel=1e-12)
    assert df.loc[1, "bias"] == pytest.approx(model.data_bias("radius", data))


# ----------------------------------------------------------------------------- figures and settings
def test_direction_profile_at_zero_is_the_loss_at_the_dictionary_and_the_png_is_written(tmp_path):
    data = _tiny()
    direction = model.random_direction(8, 24, seed=0)
    torch.testing.assert_close(direction.norm(dim=1), torch.ones(24, dtype=torch.float64))
    profile = figures.direction_profile(data, 1.0, [-0.5, 0.0, 0.5], direction)
    assert profile.loc[1, "loss"] == pytest.approx(float(gr.autoencoder_loss(data.dictionary.T, data.signals, 1.0)))
    figure_settings = FigureSettings(_data(num_signals=30), 24, (0.2, 0.3), "radius", -0.5, 0.5, 3)
    profiles = figures.figure(figure_settings, tmp_path / "fig.png")
    assert list(profiles["t"]) == [-0.5, 0.0, 0.5] * 2 and list(profiles["p"]) == [0.2] * 3 + [0.3] * 3
    at_zero = figure_settings.data.generate(24, 0.3, torch.device("cpu"))
    eps = model.data_bias("radius", at_zero)
    assert profiles.loc[4, "bias"] == eps
    assert profiles.loc[4, "loss"] == pytest.approx(float(gr.autoencoder_loss(at_zero.dictionary.T, at_zero.signals, eps)))
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_settings_are_built_from_exactly_their_keys():
    data = _data(dtype="float32")
    assert data.generate(24, 0.3, torch.device("cpu")).signals.dtype == torch.float32
    table_21 = settings(Table21Settings, {"data": DATA, "h_values": [256], "p_values": [0.1], "num_points": 7, "bias_rule": "radius",
                                          "study_rules": ["theorem"], "max_elements": 100})  # fmt: skip
    assert table_21.h_values == (256,) and table_21.rules == ("radius", "theorem")
    with pytest.raises(ConfigError, match=r"missing \['max_elements'\]"):
        settings(Table21Settings, {"data": DATA, "h_values": [256], "p_values": [0.1], "num_points": 7, "bias_rule": "radius", "study_rules": []})
    with pytest.raises(ConfigError, match=r"unknown \['num_point'\]"):
        settings(DataSettings, {**DATA, "num_point": 3})


def test_the_config_rejects_bad_chapter_2_settings():
    with pytest.raises(ConfigError, match="ch2.bias_rule"):
        validate_config(deep_merge(preset("quick"), {"ch2": {"bias_rule": "paper"}}))
    with pytest.raises(ConfigError, match="ch2.a .* must be below ch2.b"):
        validate_config(deep_merge(preset("quick"), {"ch2": {"a": 10.0, "b": 1.0}}))
    with pytest.raises(ConfigError, match="figure_t_min"):
        validate_config(deep_merge(preset("quick"), {"ch2": {"figure_t_min": 1.0}}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU visible")
def test_gpu_study_matches_cpu_study():
    study = _study([24], [0.2, 0.5], ["zero", "radius", "theorem"], num_points=4, num_signals=60, seed=1)
    cpu = studies.gradient_study(study)
    gpu = studies.gradient_study(dataclasses.replace(study, data=dataclasses.replace(study.data, device="cuda")))
    cols = ["grad_norm_of_mean", "grad_mean_of_norms", "loss_mean", "on_support_active", "exact_support"]
    np.testing.assert_allclose(gpu[cols].to_numpy(), cpu[cols].to_numpy(), rtol=1e-9, atol=1e-12)
