"""The real Snakemake DAG, end to end, on a tiny configuration."""

import json
import struct

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from workflow_helpers import planned_jobs, scratch_workflow, snakemake

from flatscape.pipeline.io import load_arrays

pytestmark = pytest.mark.slow


@pytest.fixture
def finished(tiny_run):
    return tiny_run


def test_tiny_run_writes_table_4_1_with_every_method_and_column(finished):
    table = pd.read_csv(finished / "results/tiny/tables/table_4_1.csv")
    ours = table[table.source == "this run"]
    assert set(ours.method) == {"VGG-16", "VGG-16-Ours", "Recon+VGG-16", "Recon+VGG-16-Ours"}
    assert ["1.0", "0.5", "Random"] == [c for c in table.columns if c not in ("method", "source")]
    # every cell is this run's evaluation of that method and ratio: correct/n on the digits test split
    n_test = len(load_arrays(finished / "results/tiny/datasets/digits.npz")["y_test"])
    slug = {"VGG-16": "vgg16", "VGG-16-Ours": "vgg16_ours", "Recon+VGG-16": "recon_vgg16",
            "Recon+VGG-16-Ours": "recon_vgg16_ours"}  # fmt: skip
    for _, row in ours.iterrows():
        for column, wildcard in (("1.0", "1.0"), ("0.5", "0.5"), ("Random", "random")):
            cell = float(row[column])
            evals = finished / f"results/tiny/ch4/partial/eval/{slug[row['method']]}"
            record = json.loads((evals / f"ratio{wildcard}.json").read_text())
            assert cell == pytest.approx(record["accuracy"], abs=5e-4)
            assert record["accuracy"] * n_test == pytest.approx(round(record["accuracy"] * n_test), abs=1e-6)
    for ext in ("md", "tex"):
        assert "VGG-16-Ours" in (finished / f"results/tiny/tables/table_4_1.{ext}").read_text()


def test_tiny_run_builds_every_chapter(finished):
    tables = {p.name for p in (finished / "results/tiny/tables").glob("*.csv")}
    figures = {p.name for p in (finished / "results/tiny/figures").glob("*.png")}
    assert {"table_2_1.csv", "table_2_2.csv", "table_3_1.csv", "table_3_2.csv", "table_3_3.csv", "table_3_4.csv",
            "table_3_5.csv", "table_3_6.csv", "table_3_7.csv", "table_3_7_runs.csv", "table_3_kendall.csv",
            "table_3_kendall_rescaled.csv", "table_4_1.csv", "table_4_2.csv", "table_4_3.csv", "table_4_4.csv"} <= tables
    assert {"figure_2_1.png", "figure_2_2.png", "figure_3_1.png", "figure_3_2.png", "figure_3_3.png", "figure_4_2a.png", "figure_4_2b.png",
            "figure_4_2c.png", "figure_4_3.png", "figure_4_4.png", "figure_4_5.png"} <= figures


def test_tiny_run_writes_a_png_figure_logs_and_benchmarks(finished):
    for name in ("figure_4_2a", "figure_4_2b"):
        png = (finished / f"results/tiny/figures/{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])
        assert width > 100 and height > 100
    timings = pd.read_csv(finished / "results/tiny/tables/figure_4_2b_timings.csv")
    assert list(timings.ratio) == [1.0, 0.5] and (timings[["direct_seconds", "recon_seconds"]] > 0).all().all()
    assert "epoch 1/1" in (finished / "logs/tiny/ch4/partial/train_vgg16_ours.log").read_text()
    bench = pd.read_csv(finished / "benchmarks/tiny/ch4/partial/train_vgg16.tsv", sep="\t")
    assert len(bench) == 1 and bench.s.iloc[0] > 0  # one timed run of the job
    assert not list((finished / "results/tiny/ch4/partial/models").glob("*.ckpt"))  # superseded by the model


def test_tiny_run_table_3_7_has_both_batch_sizes_and_an_invariant_riemannian_value(finished):
    runs = pd.read_csv(finished / "results/tiny/tables/table_3_7_runs.csv")
    assert len(runs) == 4 and sorted(runs.batch_size.unique()) == [50, 300]
    stop_loss = yaml.safe_load((REPO / "config.yaml").read_text())["ch3"]["minima"]["stop_loss"]
    # reached exactly when training stopped below the loss threshold at 100% training accuracy
    reached = (runs.train_loss < stop_loss) & (runs.train_accuracy == 1.0)
    assert (runs.reached_threshold.astype(bool) == reached).all()
    assert (runs.epochs_run == 2).all() or runs.reached_threshold.any()  # without reaching it, the epoch cap
    n_test = len(load_arrays(finished / "results/tiny/datasets/digits.npz")["y_test"])
    assert np.allclose(runs.test_accuracy * n_test, np.round(runs.test_accuracy * n_test))
    assert (runs.test_accuracy > 0.2).all()  # 10 classes: chance is 0.1; 2 epochs on digits do better
    assert (runs.riemannian > 0).all()
    assert ((runs.riemannian_rescaled / runs.riemannian - 1).abs() < 1e-3).all()
    table = pd.read_csv(finished / "results/tiny/tables/table_3_7.csv")
    assert list(table.batch_size) == [50, 300] and table.large_small_ratio_riemannian.notna().tolist() == [False, True]
    assert "Adam, lr=0.001" in (finished / "results/tiny/tables/table_3_6.md").read_text()


def test_changing_the_flatness_tolerance_remeasures_without_retraining(finished):
    cfg = yaml.safe_load((finished / "tiny.yaml").read_text())
    cfg["ch3"]["minima"]["flatness"]["tol"] = 1e-2
    (finished / "tiny_tol.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(finished, "--configfile", "tiny_tol.yaml")
    # the ranking of measures reads the thesis's values too; the other measures are not retaken
    assert jobs == {"measure_minimum": 4, "table_3_7": 1, "ch3_scatter_figures": 1, "table_measures": 1, "claims": 1,
                    "all": 1}  # fmt: skip


def test_finished_target_reruns_nothing(finished):
    assert planned_jobs(finished, "--configfile", "tiny.yaml") == {}


def test_changing_one_test_ratio_reruns_only_its_downstream(finished, tmp_path):
    cfg = yaml.safe_load((finished / "tiny.yaml").read_text())
    cfg["ch4"]["partial"]["test_ratios"] = [1.0, 0.4]
    (finished / "tiny_changed.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(finished, "--configfile", "tiny_changed.yaml")
    # One job encodes every test set and one per method evaluates its row of Table 4.1 (a process
    # per cell cost more than the cells); no network is retrained.
    assert jobs == {"encode_partial_test": 1, "evaluate_partial": 4, "table_4_1": 1, "figure_4_2a": 1,
                    "time_partial": 1, "figure_4_2b": 1, "claims": 1, "all": 1}


def test_changing_a_training_ratio_retrains_only_vgg16_ours(finished):
    cfg = yaml.safe_load((finished / "tiny.yaml").read_text())
    cfg["ch4"]["partial"]["train_ratios"] = [0.5, 0.3]
    (finished / "tiny_train.yaml").write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(finished, "--configfile", "tiny_train.yaml")
    # VGG-16-Ours is both a direct method and the classifier behind Recon+VGG-16-Ours
    assert jobs == {"train_partial_classifier": 1, "evaluate_partial": 2, "table_4_1": 1, "figure_4_2a": 1,
                    "time_partial": 1, "figure_4_2b": 1, "claims": 1, "all": 1}


# `all` and `paper` hold every chapter target's jobs, so their DAGs cover ch2 ... ch4_detection.
TARGETS = ["all", "paper", "data"]


@pytest.mark.parametrize("preset", ["config.yaml", "config/cpu.yaml", "config/paper.yaml"])
def test_dag_builds_for_every_preset_and_target(tmp_path_factory, preset):
    work = _shared_copy(tmp_path_factory)
    for target in TARGETS:  # one at a time, so a target whose DAG fails is named
        proc = snakemake(work, "--dry-run", target, "--configfile", preset)
        assert "Building DAG of jobs" in proc.stdout + proc.stderr


def test_bad_config_fails_before_any_job_naming_the_key(tmp_path):
    work = scratch_workflow(tmp_path, {"ch4": {"partial": {"test_ratios": [1.0, 1.5]}, "colour": "red"}})
    proc = snakemake(work, "--configfile", "tiny.yaml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ch4.partial.test_ratios[1]: 1.5 is greater than the maximum of 1" in out
    assert "unknown key(s) ('colour' was unexpected)" in out
    assert not (work / "results").exists()


def test_minima_row_with_small_batch_not_below_large_is_rejected(tmp_path):
    row = {"dataset": "digits", "network": "f1", "bias": False, "seeds": 1, "train_size": None, "flatness_samples": 10,
           "eps": None, "small": {"batch_size": 500, "epochs": 1, "optimiser": {"name": "adam", "lr": 1e-3, "momentum": 0.9,
           "weight_decay": 0.0}}, "large": {"batch_size": 500, "epochs": 1, "optimiser": {"name": "adam", "lr": 1e-3,
           "momentum": 0.9, "weight_decay": 0.0}}}  # fmt: skip
    work = scratch_workflow(tmp_path, {"ch3": {"minima": {"rows": [row]}}})
    proc = snakemake(work, "--configfile", "tiny.yaml", "--dry-run", check=False)
    assert proc.returncode != 0
    assert "ch3.minima.rows (digits-f1): the small batch size must be below the large one" in proc.stdout + proc.stderr


def test_lint_is_clean(tmp_path_factory):
    work = _shared_copy(tmp_path_factory)
    proc = snakemake(work, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


_COPY = {}


def _shared_copy(factory):
    if "work" not in _COPY:
        _COPY["work"] = scratch_workflow(factory.mktemp("dry"))
    return _COPY["work"]
