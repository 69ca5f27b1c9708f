"""Chapter 2 on the real DAG: each job's params hold only the settings it reads.

The tiny preset's one finished run (the session's `tiny_run`, shared with
tests/test_workflow.py) is reused; each test plans a dry run of `ch2` against it with one
config key changed and checks which jobs would rerun.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from workflow_helpers import planned_jobs

pytestmark = pytest.mark.slow

TABLES = "results/tiny/tables"


@pytest.fixture
def finished(tiny_run):
    """The tiny preset's finished run (conftest), which includes the `ch2` target."""
    return tiny_run


def _plan_with(work, key: str, value) -> dict[str, int]:
    """The dry-run plan of `ch2` with ``ch2.<key>`` set to ``value``."""
    cfg = yaml.safe_load((work / "tiny.yaml").read_text())
    cfg["ch2"][key] = value
    (work / f"{key}.yaml").write_text(yaml.safe_dump(cfg))
    return planned_jobs(work, "ch2", "--configfile", f"{key}.yaml")


def test_each_job_ran_with_its_own_settings(finished):
    assert planned_jobs(finished, "ch2", "--configfile", "tiny.yaml") == {}
    descent = pd.read_csv(finished / TABLES / "table_2_2.csv")  # TINY: descent at h = 24, p = 0.1, rule zero
    assert list(descent["rule"]) == ["zero"] and descent.loc[0, "initial_distance"] == pytest.approx(0.2 * 24 * 24 ** (-0.2), rel=1e-6)
    readings = pd.read_csv(finished / TABLES / "table_2_1_bias_readings.csv")
    assert list(readings["rule"]) == ["radius", "theorem"] and list(readings["num_points"]) == [2, 2]
    for name in ("figure_2_1_profiles", "figure_2_2_profiles"):
        profiles = pd.read_csv(finished / TABLES / f"{name}.csv")
        assert list(profiles["t"]) == [-1.0, -0.5, 0.0, 0.5, 1.0] and set(profiles["h"]) == {24}


def test_a_figure_setting_reruns_only_the_figures(finished):
    assert _plan_with(finished, "figure_num_t", 7) == {"figure_2_1": 1, "figure_2_2": 1, "ch2": 1}


def test_a_descent_setting_reruns_only_table_2_2(finished):
    assert _plan_with(finished, "descent_rel_tol", 5.0e-3) == {"table_2_2": 1, "ch2": 1}


def test_a_shared_data_setting_reruns_every_job(finished):
    assert _plan_with(finished, "num_signals", 41) == {"table_2_1": 1, "table_2_2": 1, "figure_2_1": 1, "figure_2_2": 1, "ch2": 1}
