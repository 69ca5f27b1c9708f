"""Data-parallel Hessian-vector products on ``torch.distributed`` (beyond the thesis).

When a process group is initialised (gloo on CPUs, NCCL on GPUs) and has more than
one rank, ``LossHessian`` treats each rank's data as a shard of one data set: the
sample count N is the sum over ranks, each rank weights its micro-batch losses by
n_b / N, and every HVP (and the loss) is the all-reduced sum of the ranks' parts.
That sum is H v of the mean loss over all N samples, so the result equals the
single-process value on the union of the shards, whatever their sizes, up to the
order of the floating-point additions. Everything else (start vectors drawn from the
seed on the CPU, the solvers' float64 vectors) is identical on every rank, and an
all-reduce hands every rank the same sum, so all ranks run the same iterations and
return the same result.

Every rank must construct the operator and call the estimators in the same order
(the collectives pair up), and hold at least one sample. Launch with ``torchrun``
(one node) or ``srun torchrun`` (SLURM nodes); ``init_from_env`` starts the group
from the variables those set.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from flatscape.core.flatness.batches import Batch, Data, strided_subset


def active() -> bool:
    """Whether HVPs are all-reduced: a process group is initialised and has more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_size() -> tuple[int, int]:
    """(this process's rank, number of ranks); (0, 1) without a process group."""
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over all ranks, in place (returned unchanged without a group)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def shard(data: Data) -> list[Batch]:
    """This rank's shard of ``data``: every ``world``-th sample from the ``rank``-th (all of it without a group)."""
    rank, size = rank_and_size()
    return strided_subset(data, rank, size)


def init_from_env(device: torch.device) -> bool:
    """Start the process group from ``torchrun``'s variables (``WORLD_SIZE`` > 1); True if distributed.

    NCCL for a CUDA device, gloo otherwise. A group the caller already started is used as it is.
    """
    if dist.is_available() and dist.is_initialized():
        return active()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return active()
