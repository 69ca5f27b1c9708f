"""The SLURM profile on a real (single-node, throwaway) SLURM cluster, end to end.

The cluster is Debian's Slurm 22.05 without accounting (no slurmdbd), started by
tests/slurm_cluster.py; the run uses workflow/profiles/slurm unchanged plus the two
flags docs/cluster.md gives for clusters without accounting.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pandas as pd
import pytest

from slurm_cluster import ClusterError, missing_programs, start_cluster
from workflow_helpers import SNAKEMAKE, scratch_workflow, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

# One test ratio, no random column, no autoencoders: the Chapter 4a rules with their
# GPU/CPU mix and fewer jobs, since every SLURM job pays for a fresh Snakemake start.
SMALLER = {"ch4": {"partial": {"test_ratios": [1.0], "random_column": False, "autoencoder": {"enabled": False}}}}
TARGET = "ch4_partial"


@pytest.fixture(scope="module")
def cluster():
    if missing_programs() and os.geteuid() != 0:
        pytest.skip(f"SLURM programs {missing_programs()} are missing and only root can apt-get them")
    try:
        # 16 declared cores: both training jobs (4 cores per GPU each) and CPU jobs run side by side.
        cluster = start_cluster(cpus=16, gpus=2)
    except ClusterError as err:
        pytest.fail(f"could not start the test SLURM cluster: {err}")
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The tiny Chapter 4a slice run through --executor slurm with the project's profile."""
    work = scratch_workflow(tmp_path_factory.mktemp("slurm_wf"), SMALLER)
    cmd = [
        SNAKEMAKE, "--workflow-profile", str(work / "workflow/profiles/slurm"),
        "--directory", str(work), "--snakefile", str(work / "Snakefile"),
        "--configfile", "tiny.yaml", "--jobs", "4",
        # No slurmdbd: follow jobs with squeue, first look after 1 s (MinJobAge >= 3 s).
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        TARGET,
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=cluster.env(), capture_output=True, text=True, timeout=450)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise AssertionError(
            f"snakemake --executor slurm failed ({proc.returncode}) after {seconds:.0f} s:\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}\n--- slurmctld.log ---\n{cluster.log_text('slurmctld')[-3000:]}"
        )
    return work, proc.stdout + proc.stderr, cluster.jobs(), seconds


@pytest.fixture(scope="module")
def declared_gpus(slurm_run):
    """Rule -> GPUs it declares (0 for none), read from a local dry run of the same DAG."""
    work = slurm_run[0]
    out = snakemake(work, TARGET, "--dry-run", "--forceall", "--configfile", "tiny.yaml").stdout
    gpus = {}
    for match in re.finditer(r"^rule (\w+):\n(.*?)^\s*resources: ([^\n]*)", out, re.S | re.M):
        declared = re.search(r"\bgpu=(\d+)", match.group(3))
        gpus[match.group(1)] = int(declared.group(1)) if declared else 0
    gpus.pop(TARGET)  # a target rule has no action; Snakemake finishes it on the login node
    assert gpus.get("train_partial_classifier") == 1 and 0 in gpus.values()
    return gpus


def _jobs_by_rule(jobs):
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        # The plugin puts rule_<name>[_wildcards_<...>] into each job's comment.
        comment = job.get("Comment", "")
        rule = comment.removeprefix("rule_").split("_wildcards_")[0]
        by_rule.setdefault(rule, []).append(job)
    return by_rule


def test_slurm_run_writes_table_4_1_and_figure(slurm_run):
    work, log, _, _ = slurm_run
    table = pd.read_csv(work / "results/tiny/tables/table_4_1.csv")
    assert set(table[table.source == "this run"].method) == {"VGG-16", "VGG-16-Ours"}
    assert (work / "results/tiny/figures/figure_4_2a.png").read_bytes()[:4] == b"\x89PNG"
    assert "has been submitted with SLURM jobid" in log
    assert re.search(r"\b(\d+) of \1 steps \(100%\) done", log)


def test_every_job_ran_as_a_completed_slurm_job(slurm_run, declared_gpus):
    _, _, jobs, _ = slurm_run
    by_rule = _jobs_by_rule(jobs)
    assert set(by_rule) == set(declared_gpus)
    assert len(by_rule["train_partial_classifier"]) == 2
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}


def test_gpu_rules_request_their_gpus_on_the_gpu_partition(slurm_run, declared_gpus):
    _, _, jobs, _ = slurm_run
    for rule, rule_jobs in _jobs_by_rule(jobs).items():
        if declared_gpus[rule]:
            for job in rule_jobs:
                assert job.get("TresPerJob") == f"gres:gpu:{declared_gpus[rule]}", (rule, job)
                assert job["Partition"] == "gpu", (rule, job)
                assert job.get("CpusPerTres") == "gres:gpu:4", (rule, job)  # the profile's cpus_per_gpu


def test_cpu_rules_request_no_gpu_and_land_on_the_cpu_partition(slurm_run, declared_gpus):
    _, _, jobs, _ = slurm_run
    cpu_rules = [rule for rule, gpus in declared_gpus.items() if not gpus]
    for rule in cpu_rules:
        for job in _jobs_by_rule(jobs)[rule]:
            assert "gpu" not in job.get("TresPerJob", "") + job.get("JOB_GRES", ""), (rule, job)
            assert job["Partition"] == "cpu", (rule, job)


def test_training_memory_request_is_the_rules_first_attempt_value(slurm_run):
    _, _, jobs, _ = slurm_run
    for job in _jobs_by_rule(jobs)["train_partial_classifier"]:
        assert job["MinMemoryNode"] == "8000M"


def test_training_job_falls_back_to_cpu_with_a_log_line_on_a_fake_gpu(slurm_run):
    work, _, _, _ = slurm_run
    # SLURM set CUDA_VISIBLE_DEVICES to the fake card; torch sees no real GPU there.
    text = (work / "logs/tiny/ch4/partial/train_vgg16.log").read_text()
    assert "no GPU visible to this job; running on the CPU" in text
    kept = list((work / ".snakemake/slurm_logs/rule_train_partial_classifier").rglob("*.log"))
    assert len(kept) == 2  # the profile keeps the sbatch logs of successful jobs
