"""When does the subsample warm start pay? The measurement behind ``warm_start="auto"`` (issue 24, item 2).

One MNIST-FC (784-512x5-10, no biases) trained for ``--epochs`` of Adam on the first
``max(--sizes)`` MNIST training images; its top Euclidean eigenvalue on the first n of
them, for each n in ``--sizes``, by a cold Lanczos (``warm_start=()``) and by one warm
stage on a ``--fraction`` subsample, both to the same ``--tol`` (the eigenvalue's
estimated relative error). Cold and warm runs alternate, ``--repeats`` of each, medians
reported with the HVP counts (which the machine's load does not change) and the ratio
cold / warm: above 1 the warm stage pays. ``AUTO_WARM_MIN_SAMPLES`` in
``flatscape.core.flatness.defaults`` is read off this table.

Run: ``PYTHONPATH=src python benchmarks/bench_warm_rule.py [--sizes 500,1000,2000,4000,10000]
[--out docs/results/peers/warm_rule.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bench_flatness import CE, REPO, load_mnist, train_briefly  # benchmarks/ is on sys.path when run
from flatscape.core.flatness import WarmStage, euclidean_spectral_norm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=REPO.parent / "shared" / "data" / "mnist" / "raw")
    parser.add_argument("--sizes", default="500,1000,2000,4000,10000", help="comma-separated sample counts")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not args.mnist.exists():
        parser.error(f"--mnist {args.mnist} does not exist")
    x, y = load_mnist(args.mnist, sizes[-1])
    model = train_briefly(x, y, args.epochs, args.seed).eval()
    stage = (WarmStage(fraction=args.fraction),)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; MNIST-FC trained on {len(x)} images; "
          f"tol {args.tol:g}, warm {args.fraction:g} subsample, medians of {args.repeats}")  # fmt: skip
    print("| samples | subsample | cold HVPs | warm HVPs (full + subsample) | cold s | warm s | cold / warm | value diff |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for n in sizes:
        data = (x[:n], y[:n])
        kept = sum(len(b[1]) for b in stage[0].samples(data))
        times = {"cold": [], "warm": []}
        results = {}
        for _ in range(args.repeats):
            for kind, warm in (("cold", ()), ("warm", stage)):
                t0 = time.perf_counter()
                results[kind] = euclidean_spectral_norm(model, CE, data, tol=args.tol, seed=args.seed, warm_start=warm)
                times[kind].append(time.perf_counter() - t0)
        cold, warm = results["cold"], results["warm"]
        row = {"samples": n, "subsample": kept, "cold_hvp": cold.num_hvp, "warm_hvp": warm.num_hvp,
               "warm_stage_hvp": list(warm.warm_hvp), "cold_s": statistics.median(times["cold"]),
               "warm_s": statistics.median(times["warm"]), "times": times,
               "value_diff": abs(warm.value - cold.value) / abs(cold.value)}  # fmt: skip
        row["ratio"] = row["cold_s"] / row["warm_s"]
        rows.append(row)
        print(f"| {n} | {kept} | {cold.num_hvp} | {warm.num_hvp} + {sum(warm.warm_hvp)} | {row['cold_s']:.3g} | "
              f"{row['warm_s']:.3g} | {row['ratio']:.2f} | {row['value_diff']:.1e} |", flush=True)  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps({"torch": torch.__version__, "args": vars(args) | {"mnist": str(args.mnist),
                                        "out": str(args.out)}, "rows": rows}, indent=1))  # fmt: skip
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
