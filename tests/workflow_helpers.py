"""Run the real Snakemake workflow in a scratch copy of the repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import REPO, deep_merge

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
COPIED = ["Snakefile", "config.yaml", "config", "workflow", "scripts", "envs", "src"]

# The smallest settings that still run every rule of the quick preset.
TINY = {
    "preset": "tiny",
    "ch4": {
        "partial": {
            "model": {"name": "vgg11", "width": 2, "batch_norm": True},
            "train": {"epochs": 1, "batch_size": 128, "checkpoint_every": 1},
            "test_ratios": [1.0, 0.5],
            "autoencoder": {"ratios": [0.5], "width": 2, "train": {"epochs": 1, "batch_size": 128}},
        }
    },
}


def scratch_workflow(dest: Path, overrides: dict | None = None) -> Path:
    """Copy the workflow into ``dest`` and write ``tiny.yaml`` with the TINY settings (plus ``overrides``)."""
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    (dest / "tiny.yaml").write_text(yaml.safe_dump(deep_merge(TINY, overrides or {})))
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [SNAKEMAKE, "--cores", "2", "--directory", str(workdir), "--snakefile", str(workdir / "Snakefile"), *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of a dry run (empty when nothing is to be done)."""
    proc = snakemake(workdir, "--dry-run", *args)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    block = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match:
            break
        jobs[match.group(1)] = int(match.group(2))
    jobs.pop("total", None)
    return jobs
