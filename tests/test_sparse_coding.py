"""Tests for landscapes.ch2.sparse_coding (thesis Chapter 2), on tiny synthetic problems."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from landscapes.ch2 import sparse_coding as sc


def _tiny(h: int = 24, n: int = 8, p: float = 0.3, num_signals: int = 60, seed: int = 3, dtype=torch.float64):
    return sc.generate_data(n, h, p, num_signals, seed=seed, dtype=dtype)


def _points(data, radius: float, count: int, seed: int = 0) -> torch.Tensor:
    return sc.perturbed_points(data.dictionary, radius, sc.make_generator(seed, 99), count)


# ----------------------------------------------------------------------------- data
def test_codes_have_k_distinct_support_entries_in_range_and_signals_equal_dictionary_times_codes():
    data = _tiny()
    assert data.k == sc.support_size(24, 0.3) == round(24**0.3)
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
    report = sc.coherence_report([24, 48], n=8, seed=3)
    assert report.loc[0, "coherence"] == pytest.approx(data.coherence)
    assert list(report.columns) == ["h", "n", "coherence", "xi", "mu"]


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
    assert float(sc.columnwise_distance(points[0], data.dictionary)) == pytest.approx(0.37)


# ----------------------------------------------------------------------------- bias readings
def test_theorem_bias_is_the_printed_formula_and_unknown_rules_are_rejected():
    m1, h, p, coh = 5.5, 256, 0.1, 0.55
    delta = 256 ** (-0.2)
    assert sc.bias_value("theorem", h=h, p=p, n=50, m1=m1, coherence=coh) == pytest.approx(2 * m1 * h**p * (delta + coh))
    assert sc.bias_value("mu_is_coherence", h=h, p=p, n=50, m1=m1, coherence=coh) == pytest.approx(
        2 * m1 * h**p * (delta + coh / math.sqrt(50))
    )
    assert sc.bias_value("zero", h=h, p=p, n=50, m1=m1, coherence=coh) == 0.0
    assert set(sc.BIAS_RULES) >= {"theorem", "mu_is_coherence", "no_coherence", "half", "quarter", "radius", "zero"}
    with pytest.raises(ValueError, match="unknown bias rule"):
        sc.bias_value("nope", h=h, p=p, n=50, m1=m1, coherence=coh)


def test_a_bias_above_every_preactivation_silences_the_layer_with_zero_gradient():
    data = _tiny()
    w = _points(data, 0.2, 1)[0]
    eps = float((w @ data.signals).max()) + 1.0
    loss, grad = sc.loss_and_gradient(w, data.signals, eps)
    assert float(grad.abs().max()) == 0.0
    assert float(loss) == pytest.approx(0.5 * float(data.signals.square().sum()) / data.num_signals)


# ----------------------------------------------------------------------------- loss and gradient
@pytest.mark.parametrize("method", ["dense", "sparse"])
@pytest.mark.parametrize("eps_kind", ["scalar", "vector"])
def test_closed_form_gradient_matches_autograd_in_float64(method, eps_kind):
    data = _tiny()
    w = _points(data, 0.4, 3).requires_grad_()
    eps = 2.0 if eps_kind == "scalar" else torch.linspace(0.5, 4.0, 24, dtype=torch.float64)
    loss = sc.autoencoder_loss(w, data.signals, eps)
    (expected,) = torch.autograd.grad(loss.sum(), w)
    closed_loss, closed = sc.loss_and_gradient(w.detach(), data.signals, eps, method=method)
    torch.testing.assert_close(closed_loss, loss.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(closed, expected, rtol=1e-10, atol=1e-10)
    assert float(expected.abs().max()) > 0  # the check is not vacuous


def test_gradient_matches_the_per_signal_formula_of_section_2_5():
    data = _tiny(num_signals=7)
    w = _points(data, 0.3, 1)[0]
    eps = 1.5
    _, grad = sc.loss_and_gradient(w, data.signals, eps)
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
    assert float(sc.autoencoder_loss(w, data.signals, 0.7)) == pytest.approx(direct, rel=1e-12)


def test_gradient_matches_finite_differences_of_the_loss():
    data = _tiny()
    w = _points(data, 0.3, 1)[0]
    eps = 1.0
    _, grad = sc.loss_and_gradient(w, data.signals, eps)
    direction = torch.randn(w.shape, generator=torch.Generator().manual_seed(1), dtype=w.dtype)
    step = 1e-6
    numeric = (sc.autoencoder_loss(w + step * direction, data.signals, eps) - sc.autoencoder_loss(w - step * direction, data.signals, eps)) / (2 * step)
    assert float(numeric) == pytest.approx(float((grad * direction).sum()), rel=1e-6)


def test_float32_gradient_agrees_with_float64_on_a_sample():
    d64 = sc.generate_data(50, 256, 0.1, 500, seed=0, dtype=torch.float64)
    w64 = sc.perturbed_points(d64.dictionary, sc.delta_radius(256, 0.1) / 2, sc.make_generator(0, 7), 2)
    eps = sc.data_bias("radius", d64)
    _, g64 = sc.loss_and_gradient(w64, d64.signals, eps)
    _, g32 = sc.loss_and_gradient(w64.float(), d64.signals.float(), eps)
    assert float((g32.double() - g64).norm() / g64.norm()) < 1e-4


def test_unknown_gradient_method_is_rejected():
    data = _tiny()
    with pytest.raises(ValueError, match="method"):
        sc.loss_and_gradient(data.dictionary.T, data.signals, 0.0, method="fast")


def test_active_pairs_restrict_equals_fresh_pairs_for_the_larger_bias():
    data = _tiny()
    w = _points(data, 0.4, 2)
    product = w @ data.signals
    small, large = torch.tensor(1.0, dtype=w.dtype), torch.tensor(3.0, dtype=w.dtype)
    restricted = sc.ActivePairs.from_mask(product, product > small, small).restrict(large)
    fresh = sc.ActivePairs.from_mask(product, product > large, large)
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
    assert sc.ActivePairs.from_mask(product, active, eps).support_counts(data.support) == (on, off, exact)
    assert sc._support_counts(active, data.support) == (on, off, exact)


# ----------------------------------------------------------------------------- Table 2.1 study
def test_gradient_study_paths_agree_and_norm_of_mean_never_exceeds_mean_of_norms():
    kwargs = dict(n=8, num_signals=80, num_points=6, seed=1, dtype=torch.float64)
    rules = ["zero", "quarter", "radius", "theorem"]
    fast = sc.gradient_study([24], [0.2, 0.5], rules, **kwargs)
    # no candidate pruning, and the product path forced dense for every rule
    slow = sc.gradient_study([24], [0.2, 0.5], rules, candidate_below=0.0, sparse_below=0.0, **kwargs)
    cols = ["grad_norm_of_mean", "grad_mean_of_norms", "loss_mean", "on_support_active", "off_support_silent", "exact_support"]
    np.testing.assert_allclose(fast[cols].to_numpy(), slow[cols].to_numpy(), rtol=1e-9, atol=1e-12)
    assert (fast["grad_norm_of_mean"] <= fast["grad_mean_of_norms"] + 1e-12).all()
    assert (fast.loc[fast.rule == "theorem", "grad_norm_of_mean"] >= 0).all()
    assert set(fast["rule"]) == set(rules) and len(fast) == 8


def test_gradient_study_is_deterministic_and_matches_a_direct_average():
    kwargs = dict(n=8, num_signals=50, num_points=4, seed=2, dtype=torch.float64)
    a = sc.gradient_study([24], [0.3], ["radius"], **kwargs)
    b = sc.gradient_study([24], [0.3], ["radius"], max_elements=24 * 50, **kwargs)  # one point per batch
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), rtol=1e-10)
    data = sc.generate_data(8, 24, 0.3, 50, seed=2, dtype=torch.float64)
    points = sc.perturbed_points(data.dictionary, sc.delta_radius(24, 0.3) / 2, sc.make_generator(2, 3, 24, 300000), 4)
    _, grads = sc.loss_and_gradient(points, data.signals, sc.data_bias("radius", data))
    assert a.loc[0, "grad_norm_of_mean"] == pytest.approx(float(grads.mean(0).norm(dim=1).mean()), rel=1e-10)
    assert a.loc[0, "grad_mean_of_norms"] == pytest.approx(float(grads.norm(dim=2).mean()), rel=1e-10)


def test_table_frames_carry_thesis_values_beside_ours():
    study = sc.gradient_study([256], [0.5], ["radius"], num_signals=200, num_points=2, seed=0)
    table = sc.table_2_1_frame(study, "radius")
    assert table.loc[0, "thesis_grad"] == 0.0343 and table.loc[0, "thesis_h_pow_p_minus_1"] == 0.0625
    assert table.loc[0, "h_pow_p_minus_1"] == pytest.approx(256**-0.5)
    support = sc.support_recovery_frame(study, "radius")
    assert {"on_support_active", "off_support_silent", "exact_support", "theorem_bound", "hypothesis_holds"} <= set(support.columns)
    assert support.loc[0, "theorem_bound"] == pytest.approx(1 - math.exp(-2 * 16 * 5.5**2 / 81))
    summary = sc.bias_reading_summary(study)
    assert set(summary["statistic"]) == {"grad_norm_of_mean", "grad_mean_of_norms", "grad_fro_over_h"}


def test_reading_summary_and_closest_cell_scores_are_computed_from_the_ratios():
    study = pd.DataFrame(
        {
            "rule": ["a", "a", "a", "b", "b", "b"], "h": [256, 512, 1024] * 2, "p": [0.5] * 6,
            "thesis_grad": [0.0343, 0.0028, 0.0] * 2,
            "grad_norm_of_mean": [0.0686, 0.0056, 0.0, 0.0343, 0.1, 0.001], "grad_mean_of_norms": [0.07, 0.006, 0.0, 0.04, 0.1, 0.001],
            "grad_fro_over_h": [0.01, 0.001, 0.0, 0.01, 0.01, 0.001],
        }
    )
    summary = sc.bias_reading_summary(study)
    row = summary[(summary.rule == "a") & (summary.statistic == "grad_norm_of_mean")].iloc[0]
    assert row["median_abs_log10_ratio"] == pytest.approx(math.log10(2.0))
    assert row["geometric_mean_ratio"] == pytest.approx(2.0) and row["median_abs_log10_after_scale"] == pytest.approx(0.0, abs=1e-12)
    assert row["cells_within_2x"] == 2 and row["zero_cells_matched"] == 1
    closest = sc.closest_reading_per_cell(study)
    assert list(closest["closest_rule"]) == ["b", "a", "a|b"]
    assert closest.loc[1, "closest_ratio"] == pytest.approx(2.0)


def test_support_hypothesis_fails_at_n_50_and_holds_for_a_very_incoherent_dictionary():
    assert not sc.support_hypothesis_holds(256, 0.1, 0.55, 1.0, 10.0)
    assert sc.support_hypothesis_holds(10**12, 0.15, 1e-5, 1.0, 10.0)


# ----------------------------------------------------------------------------- Table 2.2
def test_gradient_descent_reaches_the_relative_tolerance_and_lowers_the_loss():
    data = _tiny(num_signals=80)
    w0 = _points(data, 3.0, 1)[0]
    for rule in ("bb", "armijo"):
        result = sc.gradient_descent(w0, data.signals, 0.0, dictionary=data.dictionary, rel_tol=1e-3, step_rule=rule)
        assert result.converged and result.grad_norms[-1] <= 1e-3 * result.grad_norms[0]
        assert result.losses[-1] < result.losses[0]
        assert result.distances[0] == pytest.approx(3.0)
        assert result.covered_percent == pytest.approx(100 * (1 - result.distances[-1] / 3.0))


def test_descent_study_starts_at_h_over_5_delta():
    df = sc.descent_study([24], [0.1], bias_rule="zero", n=8, num_signals=40, rel_tol=1e-2, seed=0, dtype=torch.float64)
    assert df.loc[0, "initial_distance"] == pytest.approx(0.2 * 24 * 24 ** (-0.2))
    assert bool(df.loc[0, "converged"]) and df.loc[0, "covered_percent"] > 0


# ----------------------------------------------------------------------------- figures and settings
def test_direction_profile_at_zero_is_the_loss_at_the_dictionary_and_the_png_is_written(tmp_path):
    data = _tiny()
    direction = sc.random_direction(8, 24, seed=0)
    torch.testing.assert_close(direction.norm(dim=1), torch.ones(24, dtype=torch.float64))
    profile = sc.direction_profile(data, 1.0, [-0.5, 0.0, 0.5], direction)
    assert profile.loc[1, "loss"] == pytest.approx(float(sc.autoencoder_loss(data.dictionary.T, data.signals, 1.0)))
    profiles = sc.landscape_study(24, [0.2, 0.3], [-0.5, 0.0, 0.5], bias_rule="radius", n=8, num_signals=30, dtype=torch.float64)
    path = sc.plot_landscape(profiles, tmp_path / "fig.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_config_key_and_unknown_rule_are_rejected():
    with pytest.raises(ValueError, match="unknown ch2 config keys"):
        sc.Ch2Settings.from_config({"num_point": 3})
    with pytest.raises(ValueError, match="unknown bias rule"):
        sc.Ch2Settings.from_config({"bias_rule": "paper"})
    settings = sc.Ch2Settings.from_config({"h_values": [256], "num_points": "7", "dtype": "float64"})
    assert settings.h_values == (256,) and settings.num_points == 7 and settings.torch_dtype == torch.float64


def test_run_entry_points_produce_every_table_and_figure(tmp_path):
    settings = sc.Ch2Settings.from_config(
        {
            "n": 8, "h_values": [24], "p_values": [0.3], "num_signals": 40, "num_points": 2, "study_rules": ["theorem", "zero"],
            "device": "cpu", "descent_h_values": [24], "descent_p_values": [0.1], "descent_rules": ["zero"],
            "descent_rel_tol": 1e-2, "figure_p_values": [0.3], "figure_num_t": 5,
        }
    )
    tables = sc.run_table_2_1(settings)
    assert set(tables) == {"table", "support", "readings", "summary", "closest", "coherence"}
    assert set(tables["readings"]["rule"]) == {"radius", "theorem", "zero"}
    assert len(sc.run_table_2_2(settings)) == 1
    profiles = sc.run_figure(settings, 24, tmp_path / "f.png")
    assert len(profiles) == 5 and (tmp_path / "f.png").exists()


def test_scripts_write_every_declared_output(tmp_path):
    import runpy
    from pathlib import Path
    from types import SimpleNamespace

    from snakemake.iocontainers import Namedlist

    cfg = {
        "n": 8, "h_values": [24], "p_values": [0.3], "num_signals": 40, "num_points": 2, "study_rules": ["theorem"],
        "device": "cpu", "descent_h_values": [24], "descent_p_values": [0.1], "descent_rules": ["zero"],
        "descent_rel_tol": 1e-2, "figure_p_values": [0.3], "figure_num_t": 5, "figure_2_1_h": 24, "figure_2_2_h": 24,
    }
    tables, figures = tmp_path / "tables", tmp_path / "figures"
    # Table outputs are named <key>_csv as the workflow's table_outputs() names them.
    jobs = {
        "ch2_table_2_1.py": {
            "table_csv": tables / "table_2_1.csv", "support_csv": tables / "table_2_support_recovery.csv",
            "readings_csv": tables / "table_2_1_bias_readings.csv", "summary_csv": tables / "table_2_1_bias_summary.csv",
            "closest_csv": tables / "table_2_1_closest_reading.csv", "coherence_csv": tables / "table_2_coherence.csv",
        },
        "ch2_table_2_2.py": {"table_csv": tables / "table_2_2.csv"},
        "ch2_figure_2_1.py": {"figure": figures / "figure_2_1.png", "profiles_csv": tables / "figure_2_1_profiles.csv"},
        "ch2_figure_2_2.py": {"figure": figures / "figure_2_2.png"},
    }
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    for script, outputs in jobs.items():
        mock = SimpleNamespace(
            params=Namedlist(fromdict={"cfg": cfg}), output=Namedlist(fromdict={k: str(v) for k, v in outputs.items()}),
            log=[str(tmp_path / f"{script}.log")], threads=1, input=Namedlist(),
        )
        runpy.run_path(str(scripts / script), init_globals={"snakemake": mock})
        for path in outputs.values():
            assert path.exists(), f"{script} did not write {path.name}"
            if path.suffix == ".csv":
                assert path.with_suffix(".md").exists() and path.with_suffix(".tex").exists()
    first = pd.read_csv(tables / "table_2_1.csv")
    assert {"grad_norm_of_mean", "thesis_grad", "h_pow_p_minus_1", "thesis_h_pow_p_minus_1"} <= set(first.columns)
    assert (figures / "figure_2_2.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU visible")
def test_gpu_study_matches_cpu_study():
    kwargs = dict(n=8, num_signals=60, num_points=4, seed=1, dtype=torch.float64)
    cpu = sc.gradient_study([24], [0.2, 0.5], ["zero", "radius", "theorem"], device="cpu", **kwargs)
    gpu = sc.gradient_study([24], [0.2, 0.5], ["zero", "radius", "theorem"], device="cuda", **kwargs)
    cols = ["grad_norm_of_mean", "grad_mean_of_norms", "loss_mean", "on_support_active", "exact_support"]
    np.testing.assert_allclose(gpu[cols].to_numpy(), cpu[cols].to_numpy(), rtol=1e-9, atol=1e-12)
