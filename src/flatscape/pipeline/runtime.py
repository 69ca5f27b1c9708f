"""Process-level plumbing shared by the pipeline's scripts: logging, devices, seeds.

Library functions never print or pick devices themselves; the thin scripts under
``scripts/`` call these helpers once and pass plain arguments down.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from pathlib import Path

import numpy as np
import torch

from flatscape.pipeline.extras import require_pipeline
from flatscape.pipeline.gpus import claim_gpu

log = logging.getLogger("flatscape")


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send the package's log records to ``log_file`` (created with its folder) and stderr."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    sys.excepthook = _log_uncaught  # a job's error belongs in the log Snakemake points the user to
    return log


def _log_uncaught(exc_type, exc, tb) -> None:
    if not issubclass(exc_type, KeyboardInterrupt):
        log.critical("job failed", exc_info=(exc_type, exc, tb))
    sys.__excepthook__(exc_type, exc, tb)


def select_device(preference: str = "auto") -> torch.device:
    """The device a job should use.

    ``auto`` takes a GPU *visible to this job*: under a scheduler that restricts
    visibility (CUDA_VISIBLE_DEVICES) the job's own card; on a workstation a card no
    other running job holds (``flatscape.pipeline.gpus.claim_gpu``); never a global GPU 0.
    It falls back to the CPU with a log line when no GPU is visible.
    """
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        # One visible card (SLURM, or CUDA_VISIBLE_DEVICES) is the job's own; with several
        # (a workstation), concurrent jobs claim distinct cards through lock files.
        index = claim_gpu(torch.cuda.device_count())
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<all>")
        log.info("using GPU %d, %s (CUDA_VISIBLE_DEVICES=%s)", index, torch.cuda.get_device_name(index), visible)
        return torch.device("cuda", index)
    if preference == "cuda":
        raise RuntimeError("device 'cuda' was requested but no GPU is visible to this job")
    log.info("no GPU visible to this job; running on the CPU")
    return torch.device("cpu")


def set_threads(n: int | None) -> None:
    """Respect the rule's ``threads`` so parallel jobs don't oversubscribe the cores."""
    if n is not None and n > 0:
        torch.set_num_threads(int(n))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def start_job(snakemake) -> logging.Logger:
    """What every script does first: check for the ``[pipeline]`` extra, log to the rule's
    ``log:`` file, use its ``threads``."""
    # The chapters check at import; scripts/data and scripts/tools import only the core before this.
    require_pipeline(f"rule {getattr(snakemake, 'rule', None) or 'this job'}")
    setup_logging(snakemake.log[0] if snakemake.log else None)
    set_threads(snakemake.threads)
    return log
