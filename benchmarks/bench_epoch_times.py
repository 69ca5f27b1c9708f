"""Wall-time estimate of the `mnist_faithful` preset (issue 15): epochs, HVPs, and the projected total.

Measured on the real MNIST training images (read straight from the IDX .gz files of
``--mnist``), with MNIST-FC (784-512x5-10, no biases) as the preset trains it:

(1) one epoch of ``flatscape.core.train.fit`` (Adam, lr 1e-3, a stop threshold set,
    so the full-training-set evaluation of every epoch is included) on 50,000 images
    at batch 200 and at batch 5000, with 1 and with 2 torch threads;
(2) the marginal cost of one Riemannian HVP on the 50,000 flatness samples (float32,
    micro-batches of 5000): Lanczos stopped after 2 and after 2 + k HVPs, the
    difference divided by k;
(3) how many HVPs one Lanczos measurement needs (tol 1e-4, Riemannian and Euclidean),
    counted on a network trained to a low loss on the first 5000 images (the count
    depends on the spectrum, hardly on the number of samples).

The projection assumes every run goes to its epoch cap (an upper bound: a run that
reaches CE < 1e-6 stops earlier) and that measurements take the counted HVPs at the
measured cost. Run: ``PYTHONPATH=src python benchmarks/bench_epoch_times.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench_flatness import read_idx  # the same IDX reader (benchmarks/ is on sys.path when run)
from flatscape.core.flatness import euclidean_spectral_norm, riemannian_spectral_norm
from flatscape.core.models import build_model
from flatscape.core.train import Optimiser, fit

REPO = Path(__file__).resolve().parents[1]


def mnist(root: Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = read_idx(root / "train-images-idx3-ubyte.gz")[:count].copy()
    y = read_idx(root / "train-labels-idx1-ubyte.gz")[:count].astype(np.int64)
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


def network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("mnist_fc", in_channels=1, image_size=28, bias=False)


def epoch_seconds(x, y, batch_size: int, epochs: int) -> float:
    """Seconds per epoch of fit (the last of ``epochs``; the first warms up the allocator)."""
    result = fit(network(), x, y, epochs=epochs, batch_size=batch_size, optimiser=Optimiser(name="adam", lr=1e-3),
                 seed=0, stop_loss=1e-12, progress=False)  # fmt: skip
    return result.seconds / epochs


def hvp_seconds(model, batch, k: int) -> float:
    """Marginal seconds of one Riemannian HVP on ``batch``: (t(2 + k) - t(2)) / k."""
    times = []
    for n in (2, 2 + k):
        t0 = time.perf_counter()
        riemannian_spectral_norm(model, F.cross_entropy, batch, tol=1e-30, max_hvp=n, batch_size=5000, dtype=torch.float32)
        times.append(time.perf_counter() - t0)
    return (times[1] - times[0]) / k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=REPO.parent / "shared/data/mnist/raw")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timing (the mean is reported)")
    parser.add_argument("--hvp-repeats", type=int, default=2, help="k of the marginal HVP cost")
    parser.add_argument("--caps", type=int, nargs=2, default=(200, 500), help="epoch caps, small and large batch")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--path-measures", type=int, default=2, help="path snapshots measured per run")
    parser.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    x, y = mnist(args.mnist, 50_000)
    out: dict = {"epoch_seconds": {}, "hvp_seconds": {}}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch_size in (200, 5000):
            s = epoch_seconds(x, y, batch_size, args.epochs)
            out["epoch_seconds"][f"batch{batch_size}_threads{threads}"] = s
            print(f"epoch, batch {batch_size}, {threads} thread(s): {s:.2f} s", flush=True)
    # a network a little way into training, measured on all 50,000 samples
    torch.set_num_threads(2)
    model = network()
    fit(model, x[:5000], y[:5000], epochs=40, batch_size=200, optimiser=Optimiser(name="adam", lr=1e-3), seed=0,
        stop_loss=1e-4, progress=False)  # fmt: skip
    batch = (x.float().div(255.0), y)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        s = hvp_seconds(model, batch, args.hvp_repeats)
        out["hvp_seconds"][f"threads{threads}"] = s
        print(f"one Riemannian HVP on 50,000 samples, {threads} thread(s): {s:.2f} s", flush=True)
    small = (x[:5000].float().div(255.0), y[:5000])
    counts = {}
    for name, fn in (("riemannian", riemannian_spectral_norm), ("euclidean", euclidean_spectral_norm)):
        res = fn(model, F.cross_entropy, small, tol=1e-4, max_hvp=300, batch_size=5000, dtype=torch.float32)
        counts[name] = res.num_hvp
        print(f"{name} lambda_max {res.value:.4g}: {res.num_hvp} HVPs (converged: {res.converged})", flush=True)
    out["hvps_per_measure"] = counts
    # the projection, at the faster thread count, every run to its cap
    threads = min((1, 2), key=lambda t: out["epoch_seconds"][f"batch200_threads{t}"])
    e_small, e_large = (out["epoch_seconds"][f"batch{b}_threads{threads}"] for b in (200, 5000))
    hvp = out["hvp_seconds"][f"threads{threads}"]
    train = args.seeds * (args.caps[0] * e_small + args.caps[1] * e_large)
    per_pair = (counts["riemannian"] + counts["euclidean"]) * hvp  # one Riemannian + one Euclidean lambda_max
    minima = 2 * args.seeds * 2 * per_pair  # measure_minimum: the network and its rescaled copy
    path = 2 * args.seeds * args.path_measures * per_pair
    out["projection_seconds"] = {"threads": threads, "training_at_caps": train, "measure_minimum": minima,
                                 "path": path, "total": train + minima + path}  # fmt: skip
    print(json.dumps(out["projection_seconds"], indent=2))
    print(f"projected total (sequential, {threads} thread(s), every run to its cap): {(train + minima + path) / 3600:.1f} h")
    if args.out:
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
