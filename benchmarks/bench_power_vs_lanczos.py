"""HVPs to 1e-4, Algorithm 1 (power) vs Lanczos, at other points than bench_flatness's (issue 3, item b).

bench_flatness measures (b) after 3 epochs of Adam. This script asks whether the ratio
depends on that choice: MNIST-FC (784-512x5-10, no biases) at its seeded random
initialisation and at trained checkpoints given with ``--checkpoint`` (e.g. the cpu
preset's Table 3.7 minima), on the first ``--samples`` MNIST training images. The
reference is a float32 Lanczos run to ``tol=1e-7``; each count is the first HVP after
which the estimate stays within 1e-4 of it.

Run: ``PYTHONPATH=src python benchmarks/bench_power_vs_lanczos.py --checkpoint results/cpu/ch3/minima/mnist-mnist_fc/small_seed0.pt``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_flatness import CE, REPO, hvps_to_accuracy, load_mnist

from flatscape.ch3.train import load_minimum
from flatscape.core.flatness import riemannian_spectral_norm
from flatscape.core.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=REPO.parent / "shared" / "data" / "mnist" / "raw")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--checkpoint", type=Path, action="append", default=[], help="a trained MNIST-FC (repeatable)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-power-hvp", type=int, default=300)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x, y = load_mnist(args.mnist, args.samples)
    torch.manual_seed(0)
    points = {"random initialisation (seed 0)": build_model("mnist_fc", in_channels=1, image_size=28, bias=False)}
    points |= {str(path): load_minimum(path) for path in args.checkpoint}
    print(f"MNIST-FC, {args.samples} MNIST training images, Riemannian lambda_max, float32")
    for label, model in points.items():
        model = model.float().eval()
        start = time.perf_counter()
        ref = riemannian_spectral_norm(model, CE, (x, y), tol=1e-7, max_hvp=200)
        power = riemannian_spectral_norm(model, CE, (x, y), method="power", tol=1e-6, max_hvp=args.max_power_hvp)
        n_lz = hvps_to_accuracy(ref.history, ref.value, 1e-4)
        n_pw = hvps_to_accuracy(power.history, ref.value, 1e-4)
        ratio = f"{n_pw / n_lz:.1f}x" if n_pw and n_lz else "n/a"
        print(f"{label}: lambda_max {ref.value:.6g}; HVPs to 1e-4: Algorithm 1 {n_pw}, Lanczos {n_lz} = {ratio} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
