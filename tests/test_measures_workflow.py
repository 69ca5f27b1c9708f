"""The ranking of measures on the real DAG (issue 26): `table_measures` trains and measures a tiny
population (one row, two seeds per batch size), ranks it and draws the figure; changing one
measure's setting retakes the measures without retraining."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from workflow_helpers import planned_jobs, scratch_workflow, snakemake

pytestmark = pytest.mark.slow

TINY_MEASURES = {
    "ch3": {
        "invariance": {"enabled": False},
        "minima": {
            "measures": {"samples": 100, "steps": 2, "average_samples": 2, "pac_bayes_samples": 1,
                         "pac_bayes_steps": 3, "trace_probes": 3},  # fmt: skip
        },
    },
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    work = scratch_workflow(tmp_path_factory.mktemp("measures"), TINY_MEASURES)
    snakemake(work, "table_measures", "--configfile", "tiny.yaml")
    return work


def test_the_ranking_covers_every_measure_of_the_population(finished):
    table = pd.read_csv(finished / "results/tiny/tables/table_3_measures.csv")
    assert len(table) == 10 and (table["runs"] == 4).all() and set(table["group"]) == {"digits (sklearn) / F1"}
    assert "Riemannian lambda_max (thesis)" in set(table["measure"]) and "Fisher-Rao norm" in set(table["measure"])
    assert table["tau_generalisation_gap"].between(-1, 1).any()
    assert {"granulated_batch_size", "granulated_seed", "psi"} <= set(table.columns)
    runs = pd.read_csv(finished / "results/tiny/tables/table_3_measures_runs.csv")
    assert len(runs) == 4 and sorted(runs["batch_size"].unique()) == [50, 300]
    assert (runs["relative_flatness"] > 0).all() and (runs["fisher_rao_norm"] >= 0).all()
    assert (finished / "results/tiny/figures/figure_3_measures.png").stat().st_size > 1000


def test_a_measure_setting_retakes_the_measures_without_retraining(finished):
    cfg = yaml.safe_load((finished / "tiny.yaml").read_text())
    cfg["ch3"]["minima"]["measures"]["rho"] = 0.25
    (finished / "rho.yaml").write_text(yaml.safe_dump(cfg))
    assert planned_jobs(finished, "table_measures", "--configfile", "rho.yaml") == {"measure_generalization": 4, "table_measures": 1}
