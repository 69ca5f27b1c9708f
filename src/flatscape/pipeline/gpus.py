"""GPU pinning for jobs that share one machine: each running job holds its own card.

On SLURM the scheduler gives a job its card by setting CUDA_VISIBLE_DEVICES, so the
job sees exactly one GPU and index 0 is its own. On a workstation Snakemake only
counts GPUs (``--resources gpu=N``) and every job sees every card; without pinning
they would all pick index 0. ``claim_gpu`` lets concurrent jobs agree on distinct
cards through one lock file per card: a job takes the first card whose lock no other
process holds and keeps the lock until it exits (the kernel drops it even on
SIGKILL, so a killed job never leaves its card blocked).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "FLATSCAPE_GPU_LOCK_DIR"

# Locks held by this process, by card index; kept open for the life of the process.
_held: dict[int, int] = {}


def default_lock_dir() -> Path:
    """Where jobs on this machine meet: $FLATSCAPE_GPU_LOCK_DIR, else a per-user temp folder."""
    return Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / f"flatscape-gpus-{os.getuid()}")


def _card_key(index: int) -> str:
    """A name for visible card ``index`` that is the same in every job on this machine.

    CUDA_VISIBLE_DEVICES may reorder or subset the cards; its entry (a physical index
    or a GPU UUID) names the card, not the position.
    """
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[index] if index < len(visible) else str(index)


def claim_gpu(num_visible: int, lock_dir: str | os.PathLike | None = None) -> int:
    """Index (among this job's visible cards) of a card no other running job holds.

    With one visible card (a SLURM job, or a single-GPU machine) that card is the
    job's and no lock is taken. Otherwise the first unlocked card is locked and
    returned; calling again in the same process returns the same card. When every
    card is held (more GPU jobs than ``--resources gpu=N`` allows for), the job
    shares a card rather than failing, and says so in the log.
    """
    if num_visible < 1:
        raise ValueError("claim_gpu needs at least one visible GPU")
    if num_visible == 1:
        return 0
    if _held:
        return next(iter(_held))
    folder = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(num_visible):
        key = _card_key(index).replace(os.sep, "_")
        fd = os.open(folder / f"gpu-{key}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[index] = fd
        log.info("pinned to visible GPU %d (card %s; lock %s)", index, _card_key(index), folder)
        return index
    shared = os.getpid() % num_visible
    log.warning("all %d visible GPUs are held by other jobs; sharing GPU %d (set --resources gpu=N to the card count)",
                num_visible, shared)
    return shared


def release_gpu() -> None:
    """Drop this process's card lock (process exit does the same)."""
    for fd in _held.values():
        os.close(fd)
    _held.clear()
