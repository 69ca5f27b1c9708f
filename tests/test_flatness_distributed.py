"""Data-parallel HVPs on torch.distributed equal the single-process values (issue #16, part 4).

Two CPU processes (gloo on localhost) each hold a shard of the data, of unequal sizes so
that the weighting by sample count matters; everything runs in float64.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import REPO
from flatscape.core.flatness import CurvatureOperator, spectral_norm, top_eigenpairs, trace
from flatscape.core.flatness.distributed import active, rank_and_size, shard
from test_flatness_norm import CE, bn_convnet, tiny_images

SPLIT = 17  # rank 0 holds samples [0, 17), rank 1 [17, 30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(data, metric: str) -> dict:
    op = CurvatureOperator(bn_convnet(), CE, data, metric=metric, batch_size=4)
    u = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return {
        "matvec": op.matvec(u),
        "loss": op.loss,
        "value": spectral_norm(op, tol=1e-12).value,
        "top3": top_eigenpairs(op, 3, tol=1e-10).values,
        "trace": trace(op, tol=0.0, max_hvp=8, min_hvp=8).value,
    }


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        x, y = tiny_images(n=30)
        mine = (x[:SPLIT], y[:SPLIT]) if rank == 0 else (x[SPLIT:], y[SPLIT:])
        result = {metric: _measure(mine, metric) for metric in ("riemannian", "euclidean")}
        result["active"], result["rank_size"] = active(), rank_and_size()
        result["shard_sizes"] = [len(b[0]) for b in shard((x, y))]
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("metric", ["riemannian", "euclidean"])
def test_two_gloo_ranks_equal_one_process_in_float64(two_ranks, metric):
    torch.set_num_threads(1)
    single = _measure(tiny_images(n=30), metric)
    for rank in two_ranks:
        got = rank[metric]
        assert torch.allclose(got["matvec"], single["matvec"], rtol=1e-12, atol=1e-14)
        assert got["loss"] == pytest.approx(single["loss"], rel=1e-12)
        assert abs(got["value"] - single["value"]) <= 1e-10 * abs(single["value"])
        assert all(abs(a - b) <= 1e-10 * abs(b) for a, b in zip(got["top3"], single["top3"]))
        assert got["trace"] == pytest.approx(single["trace"], rel=1e-10)
    # every rank runs the same iterations on the same all-reduced products
    assert two_ranks[0]["riemannian"]["value"] == two_ranks[1]["riemannian"]["value"]
    # ... and one shard alone gives another value: the all-reduce is what makes them equal
    alone = _measure(tuple(t[:SPLIT] for t in tiny_images(n=30)), metric)
    assert abs(alone["value"] - single["value"]) > 1e-3 * abs(single["value"])


def test_ranks_see_the_group_and_shard_by_stride(two_ranks):
    assert [r["active"] for r in two_ranks] == [True, True]
    assert [r["rank_size"] for r in two_ranks] == [(0, 2), (1, 2)]
    assert [r["shard_sizes"] for r in two_ranks] == [[15], [15]]
    assert not active() and rank_and_size() == (0, 1)  # this process has no group


def test_torchrun_two_processes_give_the_command_lines_single_process_value(tmp_path):
    """The documented launch: `torchrun --standalone --nproc_per_node 2 -m flatscape.flatness` (gloo, CPU)."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "small.npz", x=rng.integers(0, 256, (24, 1, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 24))
    common = ["--model", "flatscape:f1", "--data", f"npz:{tmp_path / 'small.npz'}", "--samples", "0", "--batch-size", "5",
              "--dtype", "float64", "--tol", "1e-11", "--max-hvp", "200", "--top-k", "2", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).parent / "torchrun")
    subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "flatscape.flatness", *common,
                    "--json", str(tmp_path / "two.json")], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "flatscape.flatness", *common, "--json", str(tmp_path / "one.json")],
                   env=env, check=True, capture_output=True, timeout=300)
    two, one = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("two", "one"))
    assert two["ranks"] == 2 and one["ranks"] == 1 and two["samples"] == one["samples"] == 24
    for a, b in zip(two["measures"]["riemannian"]["top_k"]["values"], one["measures"]["riemannian"]["top_k"]["values"]):
        assert abs(a - b) <= 1e-10 * abs(b)
