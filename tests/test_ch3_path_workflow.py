"""Chapter 3's training path on the real DAG (issue 15): adding a threshold measures only the new
snapshots, without retraining; the mnist_faithful preset plans only Chapter 3's minima."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from workflow_helpers import planned_jobs, scratch_workflow, snakemake

pytestmark = pytest.mark.slow

ADAM = {"name": "adam", "lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0}
PATH_TINY = {
    "ch3": {
        "invariance": {"enabled": False},
        "minima": {
            "rows": [{
                "dataset": "digits", "network": "f1", "bias": False, "seeds": 1, "train_size": 300,
                "flatness_samples": 200, "eps": None,
                "small": {"batch_size": 50, "epochs": 20, "optimiser": ADAM},
                "large": {"batch_size": 300, "epochs": 60, "optimiser": ADAM},
            }, {
                # the authors' protocol beside it (config/table37_protocols.yaml at toy size): exactly
                # 12 epochs for both batch sizes, no CE stop
                "dataset": "digits", "network": "f1", "arm": "fixed", "protocol": "fixed_epochs", "bias": False,
                "seeds": 1, "train_size": 300, "flatness_samples": 200, "eps": None,
                "small": {"batch_size": 50, "epochs": 12, "optimiser": ADAM},
                "large": {"batch_size": 300, "epochs": 12, "optimiser": ADAM},
            }],
            "path": {"enabled": True, "thresholds": [0.1]},
        },
    },
}
MINIMA = "results/tiny/ch3/minima/digits-f1"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A scratch workflow on which the `ch3` target (minima and the path at CE < 1e-1) has run."""
    work = scratch_workflow(tmp_path_factory.mktemp("ch3_path"), PATH_TINY)
    snakemake(work, "ch3", "--configfile", "tiny.yaml")
    return work


def _with_thresholds(work, thresholds) -> dict[str, int]:
    cfg = yaml.safe_load((work / "tiny.yaml").read_text())
    cfg["ch3"]["minima"]["path"]["thresholds"] = thresholds
    (work / "more.yaml").write_text(yaml.safe_dump(cfg))
    return planned_jobs(work, "ch3", "--configfile", "more.yaml")


def test_every_run_saved_its_decades_and_the_table_counts_them(finished):
    assert planned_jobs(finished, "ch3", "--configfile", "tiny.yaml") == {}
    for batch in ("small", "large"):
        for seed in (0,):
            snaps = sorted(p.name for p in (finished / MINIMA / f"{batch}_seed{seed}_path").glob("ce_*.pt"))
            assert snaps and set(snaps) <= {"ce_1e-01.pt", "ce_1e-02.pt", "ce_1e-03.pt"}  # whatever is measured
    table = pd.read_csv(finished / "results/tiny/tables/table_3_path.csv")
    assert list(zip(table["row"], table["point"])) == [("digits-f1", "CE < 1e-01"), ("digits-f1", "end"),
                                                       ("digits-f1-fixed", "CE < 1e-01"), ("digits-f1-fixed", "end")]
    assert table.loc[0, "reached_small"].endswith("/1") and list(table["protocol"])[-1] == "fixed_epochs"
    # two rows x two batch sizes: a snapshot at CE < 1e-1 and an endpoint each
    assert len(pd.read_csv(finished / "results/tiny/tables/table_3_path_runs.csv")) == 8
    assert (finished / "results/tiny/figures/figure_3_path.png").stat().st_size > 1000


def test_the_fixed_epoch_arm_trains_exactly_its_epochs_beside_the_ce_stop(finished):
    from flatscape.pipeline.io import load_json

    for batch in ("small", "large"):
        fixed = load_json(finished / f"{MINIMA}-fixed" / f"{batch}_seed0.json")
        assert fixed["epochs_run"] == 12 and len(fixed["history"]) == 12 and fixed["reached_threshold"] is None
        assert fixed["protocol"] == "fixed_epochs" and fixed["stop_loss"] is None
    stopped = load_json(finished / MINIMA / "small_seed0.json")
    assert stopped["protocol"] == "ce_stop" and stopped["stop_loss"] is not None
    t37 = pd.read_csv(finished / "results/tiny/tables/table_3_7.csv")
    assert list(t37["protocol"]) == ["ce_stop", "ce_stop", "fixed_epochs", "fixed_epochs"]
    for column in ("riemannian_lambda_max", "lambda_over_2_2L", "eps2_lambda_over_2_2L", "euclidean_lambda_max", "train_ce"):
        assert t37[column].notna().all()


def test_adding_a_threshold_plans_only_its_measurements(finished):
    assert _with_thresholds(finished, [0.1, 0.01]) == {"measure_path": 4, "table_3_path": 1, "figure_3_path": 1, "ch3": 1}


def test_a_bad_threshold_list_fails_before_any_job(finished):
    cfg = yaml.safe_load((finished / "tiny.yaml").read_text())
    cfg["ch3"]["minima"]["path"]["thresholds"] = [0.01, 0.1]
    (finished / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(finished, "--dry-run", "ch3", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0 and "must be strictly decreasing" in proc.stdout + proc.stderr


def test_mnist_faithful_plans_only_chapter_3_minima(tmp_path):
    work = scratch_workflow(tmp_path)
    jobs = planned_jobs(work, "--configfile", "config/mnist_faithful.yaml")
    assert jobs.pop("train_minimum") == 10 and jobs.pop("measure_minimum") == 10 and jobs.pop("measure_path") == 60
    assert jobs.pop("measure_generalization") == 10  # the ranking of measures (table_measures)
    data = {rule for rule in jobs if "dataset" in rule}  # MNIST from the mirror (datasets.smk's rules)
    assert data and set(jobs) - data == {"ch3_settings_tables", "table_3_7", "ch3_scatter_figures", "figure_3_2",
                                         "table_3_path", "figure_3_path", "table_measures", "claims", "all"}  # fmt: skip
