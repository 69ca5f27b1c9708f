"""Issue 23 on the real DAG: ch3.minima.seeds_per_job changes how many seeds a training job
trains, never the files, their fingerprints or what is cached."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from workflow_helpers import planned_jobs, scratch_workflow, snakemake

pytestmark = pytest.mark.slow

ADAM = {"name": "adam", "lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0}
TINY_ROW = {
    "ch3": {
        "invariance": {"enabled": False},
        "minima": {
            "rows": [{
                "dataset": "digits", "network": "f1", "bias": False, "seeds": 3, "train_size": 300,
                "flatness_samples": 200, "eps": None,
                "small": {"batch_size": 50, "epochs": 8, "optimiser": ADAM},
                "large": {"batch_size": 300, "epochs": 8, "optimiser": ADAM},
            }],
            "path": {"enabled": False, "thresholds": [0.1]},
        },
    },
}
MINIMA = "results/tiny/ch3/minima/digits-f1"
TRAINED = [f"{MINIMA}/{batch}_seed{s}.json" for batch in ("small", "large") for s in range(3)]


def _with_seeds_per_job(work, k: int) -> str:
    cfg = yaml.safe_load((work / "tiny.yaml").read_text())
    cfg["ch3"]["minima"]["seeds_per_job"] = k
    (work / f"k{k}.yaml").write_text(yaml.safe_dump(cfg))
    return f"k{k}.yaml"


def test_seeds_per_job_trains_the_same_files_and_changing_it_reruns_nothing(tmp_path):
    (tmp_path / "grouped").mkdir()
    (tmp_path / "alone").mkdir()
    work = scratch_workflow(tmp_path / "grouped", TINY_ROW)
    two = _with_seeds_per_job(work, 2)
    assert planned_jobs(work, *TRAINED, "--configfile", two) == {"dataset": 1} | {
        f"train_minima_digits_f1_{batch}_seeds{a}_{b}": 1 for batch in ("small", "large") for a, b in ((0, 1), (2, 2))}
    snakemake(work, *TRAINED, "--configfile", two)
    assert planned_jobs(work, *TRAINED, "--configfile", "tiny.yaml") == {}  # back to one seed a job: all cached
    assert planned_jobs(work, *TRAINED, "--configfile", _with_seeds_per_job(work, 3)) == {}
    alone = scratch_workflow(tmp_path / "alone", TINY_ROW)
    snakemake(alone, *TRAINED, "--configfile", "tiny.yaml")
    assert planned_jobs(alone, *TRAINED, "--configfile", _with_seeds_per_job(alone, 2)) == {}
    for name in TRAINED:
        g, a = (json.loads((w / name).read_text()) for w in (work, alone))
        assert g["fingerprint"] == a["fingerprint"] and g["seed"] == a["seed"] and g["epochs_run"] == a["epochs_run"]
        assert math.isclose(g["train_loss"], a["train_loss"], rel_tol=1e-3, abs_tol=1e-7)
        assert (work / name.replace(".json", ".pt")).exists() and not (work / name.replace(".json", ".ckpt")).exists()
    assert (work / "logs/tiny/ch3/minima/train_digits-f1_small_seeds0-1.log").exists()


def test_a_bad_seeds_per_job_fails_before_any_job(tmp_path):
    work = scratch_workflow(tmp_path, TINY_ROW)
    for bad, message in ((0, "seeds_per_job: 0 is less than the minimum of 1"), ("2", "seeds_per_job: '2' is not of type")):
        cfg = yaml.safe_load((work / "tiny.yaml").read_text())
        cfg["ch3"]["minima"]["seeds_per_job"] = bad
        (work / "bad.yaml").write_text(yaml.safe_dump(cfg))
        proc = snakemake(work, "--dry-run", "ch3", "--configfile", "bad.yaml", check=False)
        assert proc.returncode != 0 and message in proc.stdout + proc.stderr
