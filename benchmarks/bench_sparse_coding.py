"""Side-by-side timings of the Chapter 2 gradient paths (not a test; prints ratios).

    PYTHONPATH=src python benchmarks/bench_sparse_coding.py [--h 4096] [--p 0.1] [--points 20] [--threads 1]

Compares, on one Table 2.1 cell: the dense five-product gradient, the sparse path after
the full product W Y, and the candidate-pattern path that skips W Y (gradient_study's
default); and float32 against float64 (time and relative gradient error).
"""

from __future__ import annotations

import argparse
import time

import torch

from flatscape.ch2.gradients import loss_and_gradient
from flatscape.ch2.model import data_bias, delta_radius, generate_data, make_generator, perturbed_points
from flatscape.ch2.settings import DataSettings, Table21Settings
from flatscape.ch2.studies import StudyOptions, gradient_study


def _per_point(fn, points: int) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) / points


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--h", type=int, default=4096)
    parser.add_argument("--p", type=float, default=0.1)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--rule", default="radius")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = generate_data(50, args.h, args.p, 5000, seed=0)
    eps = data_bias(args.rule, data)
    points = perturbed_points(data.dictionary, delta_radius(args.h, args.p) / 2, make_generator(0, 1), args.points)

    def loop(method: str, dtype=torch.float32):
        sig, pts = data.signals.to(dtype), points.to(dtype)
        return lambda: [loss_and_gradient(w, sig, eps, method=method) for w in pts]

    study = Table21Settings(
        DataSettings(n=50, num_signals=5000, a=1.0, b=10.0, seed=0, device="cpu", dtype="float32"),
        h_values=(args.h,), p_values=(args.p,), num_points=args.points, bias_rule=args.rule, study_rules=(), max_elements=2**24,
    )
    timings = {
        "dense (5 products)": _per_point(loop("dense"), args.points),
        "sparse after W Y": _per_point(loop("sparse"), args.points),
        "study, W Y path": _per_point(lambda: gradient_study(study, StudyOptions(candidate_below=0.0)), args.points),
        "study, candidate path": _per_point(lambda: gradient_study(study), args.points),
        "dense float64": _per_point(loop("dense", torch.float64), args.points),
    }
    base = timings["dense (5 products)"]
    print(f"h={args.h} p={args.p} rule={args.rule} eps={eps:.3f} threads={args.threads}")
    print("  (the 'study' rows include data generation and set-up, amortised over --points)")
    for name, seconds in timings.items():
        print(f"  {name:24s} {1000 * seconds:9.2f} ms/point   x{base / seconds:6.2f} vs dense")
    _, g32 = loss_and_gradient(points[0], data.signals, eps)
    _, g64 = loss_and_gradient(points[0].double(), data.signals.double(), eps)
    print(f"  float32 vs float64 relative gradient error: {float((g32.double() - g64).norm() / g64.norm()):.2e}")


if __name__ == "__main__":
    main()
