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
    "ch2": {
        "n": 8, "h_values": [24], "p_values": [0.3], "num_signals": 40, "num_points": 2, "study_rules": ["theorem"],
        "device": "cpu", "descent_h_values": [24], "descent_p_values": [0.1], "descent_rules": ["zero"],
        "descent_rel_tol": 1.0e-2, "figure_p_values": [0.3], "figure_num_t": 5, "figure_2_1_h": 24, "figure_2_2_h": 24,
    },
    "ch3": {
        "invariance": {"num_samples": 10, "runs_table_3_3": 1, "runs_figure_3_1": 1, "max_hvp": 60, "trace_probes": 2},
        "minima": {
            "rows": [{
                "dataset": "digits", "network": "f1", "bias": False, "seeds": 2, "train_size": 300,
                "flatness_samples": 200, "eps": None,
                "small": {"batch_size": 50, "epochs": 2, "optimiser": {"name": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}},
                "large": {"batch_size": 300, "epochs": 2, "optimiser": {"name": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}},
            }],
            "flatness": {"tol": 1e-3, "max_hvp": 40, "dtype": "float32"},
            "line_plot": {"directions": 1, "num_points": 5},
            # on in tests/test_ch3_path_workflow.py, whose runs train far enough to cross the thresholds
            "path": {"enabled": False, "thresholds": [0.1]},
        },
    },
    "ch4": {
        "partial": {
            "model": {"name": "vgg11", "width": 2, "batch_norm": True},
            "train": {"epochs": 1, "batch_size": 128, "checkpoint_every": 1},
            "test_ratios": [1.0, 0.5],
            "autoencoder": {"ratios": [0.5], "width": 2, "train": {"epochs": 1, "batch_size": 128}},
        },
        "detection": {
            "scenes": {"height": 48, "width": 48, "frames": 8, "multi_target_frames": 8},
            "pce": {"fractions": [0.125, 1.0]},
            "detector": {"imgsz": 64, "epochs": 1, "finetune_epochs": 1, "raw_stride": 4, "batch": 8},
            "classifier": {"epochs": 1, "finetune_epochs": 1},
            "partial": {"num_train": 8, "num_val": 4, "image_size": 64, "test_ratios": [1.0, 0.5],
                        "detector": {"imgsz": 64, "epochs": 1, "batch": 8}},
        },
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
