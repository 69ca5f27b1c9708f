"""The workflow's user_models rule (issue #16): a ResNet-18 checkpoint with batch norm on npz
data measured by the `flatscape` tool as a cached job, part of `all` only when listed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torchvision
from workflow_helpers import planned_jobs, scratch_workflow, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    inputs = tmp_path_factory.mktemp("user_inputs")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), inputs / "r18.pt")
    rng = np.random.default_rng(0)
    np.savez(inputs / "tiny.npz", x=rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), y=rng.integers(0, 10, 8))
    entry = {"name": "r18", "model": "torchvision:resnet18", "weights": str(inputs / "r18.pt"),
             "data": f"npz:{inputs / 'tiny.npz'}", "samples": 8, "tol": 1.0e-2, "max_hvp": 40, "device": "cpu"}
    work = scratch_workflow(tmp_path_factory.mktemp("user_models"), {"user_models": [entry]})
    snakemake(work, "user_models", "--configfile", "tiny.yaml")
    return work


def test_resnet18_measured_by_the_rule(measured):
    result = json.loads((measured / "results/tiny/user_models/r18.json").read_text())
    value = result["measures"]["riemannian"]["spectral_norm"]
    assert value["converged"] and math.isfinite(value["value"]) and value["value"] > 0
    assert result["num_blocks"] == 62 and result["samples"] == 8 and result["device"] == "cpu"
    assert (measured / "logs/tiny/user_models/r18.log").exists()
    assert (measured / "benchmarks/tiny/user_models/r18.tsv").exists()


def test_the_measurement_is_cached_and_in_all_only_when_listed(measured):
    assert "measure_user_model" not in planned_jobs(measured, "user_models", "--configfile", "tiny.yaml")
    assert planned_jobs(measured, "--configfile", "tiny.yaml", "--forcerun", "measure_user_model").get("measure_user_model") == 1
    (measured / "none.yaml").write_text("user_models: []\n")
    assert "measure_user_model" not in planned_jobs(measured, "--configfile", "tiny.yaml", "none.yaml")
