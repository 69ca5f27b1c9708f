"""Where does a warm stage pay, at the accuracy users need? The measurement behind ``warm_start="auto"`` (issue 31).

For each point (model, sample count) a model is trained as in bench_peers (MNIST-FC:
``--epochs`` of Adam on MNIST; the CIFAR AlexNet and ResNet-18: ``--cifar-epochs`` on
the CIFAR-10 JPEG copy) and its top Euclidean eigenvalue is computed once per strategy:
a cold Lanczos, one warm stage on a subsample of each ``--fractions``, and (``--bf16``)
a bfloat16 stage on all samples. Each run goes to a tight tol with a timestamp after
every HVP (``CurvatureOperator(on_hvp=)``, graph building included), and keeps the
final pass's per-step trace (``FlatnessResult.trace``).

Lanczos from a given start is deterministic, so the run stopped at any looser ``tol``
is a prefix of this one: for each tol of ``TOLS`` the stop step is read off the trace
with the solver's own estimate (``ritz_error``), and with it the wall time up to that
HVP and the true relative error against the point's reference (bench_peers' cached
float64 reference where one matches, else the tightest float32 value, noted). Per
strategy and target (``--targets``, true relative error 1e-4 and 1e-6) the cheapest tol
that reaches the target gives the strategy's time; the table shows it beside the cold
start's, and the estimated against the true error of the cold run at each tol.

``auto_warm_start`` in ``flatscape.core.flatness.measures`` is read off this table.

Run: ``PYTHONPATH=src python benchmarks/bench_warm_rule.py [--points
'mnist_fc:1000,10000;resnet18:1000'] [--out docs/results/peers/warm_rule.json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from bench_flatness import CE, REPO  # benchmarks/ is on sys.path when run
from bench_peers import load_cifar, load_json, reference_key, set_up, write_json
from flatscape.core.flatness import CurvatureOperator, WarmStage, spectral_norm
from flatscape.core.flatness.solvers import MIN_GAP_STEPS, ritz_error

TOLS = (1e-1, 5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 5e-6, 2e-6, 1e-6, 1e-7)
DEFAULT_POINTS = "mnist_fc:1000,5000,10000,20000,50000;alexnet:1000,2000,5000;resnet18:1000,2000"


def stop_steps(trace, tols) -> dict[float, int]:
    """For each tol the 0-based step at which ``lanczos(stop_on="value")`` stops on this trace."""
    out = {}
    for tol in tols:
        out[tol] = len(trace) - 1
        for k, (theta, r, gap, r2) in enumerate(trace):
            est = ritz_error(r, gap, r2) if k >= MIN_GAP_STEPS else r
            if est <= tol * abs(theta):
                out[tol] = k
                break
    return out


def estimate(trace, k: int) -> float:
    theta, r, gap, r2 = trace[k]
    return (ritz_error(r, gap, r2) if k >= MIN_GAP_STEPS else r) / abs(theta)


def run_strategy(model, data, stages, args) -> dict:
    stamps: list[float] = []
    op = CurvatureOperator(model, CE, data, metric="euclidean", on_hvp=lambda: stamps.append(time.perf_counter()))
    t0 = time.perf_counter()
    res = spectral_norm(op, tol=args.final_tol, max_hvp=args.max_hvp, seed=args.seed, warm_start=stages)
    total = time.perf_counter() - t0
    return {"stamps": [s - t0 for s in stamps], "warm_hvp": list(res.warm_hvp), "trace": [list(t) for t in res.trace],
            "value": res.value, "seconds": total}  # fmt: skip


def analyse(run: dict, reference: float, targets) -> dict:
    trace, warm = run["trace"], sum(run["warm_hvp"])
    steps = stop_steps(trace, TOLS)
    per_tol = {}
    for tol, k in steps.items():
        per_tol[f"{tol:g}"] = {"hvp": k + 1, "warm_hvp": warm, "seconds": run["stamps"][warm + k],
                               "true_error": abs(trace[k][0] - reference) / abs(reference),
                               "estimated_error": estimate(trace, k)}  # fmt: skip
    best = {}
    for target in targets:
        ok = [(v["seconds"], tol) for tol, v in per_tol.items() if v["true_error"] <= target]
        best[f"{target:g}"] = None if not ok else {"tol": min(ok)[1], **per_tol[min(ok)[1]]}
    return {"per_tol": per_tol, "best": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root = REPO.parent / "shared" / "data"
    parser.add_argument("--points", default=DEFAULT_POINTS, help="model:n,n;model:n (mnist_fc, alexnet, resnet18)")
    parser.add_argument("--fractions", default="0.02,0.05,0.1,0.2", help="subsample warm stages to try")
    parser.add_argument("--bf16", default="mnist_fc:10000;resnet18:1000", help="points that also try a bfloat16 stage")
    parser.add_argument("--combined", action="store_true",
                        help="at the --bf16 points also try each subsample stage followed by the bfloat16 stage")
    parser.add_argument("--targets", default="1e-4,1e-6", help="true relative errors")
    parser.add_argument("--mnist", type=Path, default=data_root / "mnist" / "raw")
    parser.add_argument("--cifar", type=Path, default=data_root / "cifar10-jpeg" / "cifar10-jpeg-q75.tar.gz")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cifar-epochs", type=int, default=3)
    parser.add_argument("--final-tol", type=float, default=1e-9, help="tol of every run (the traces are cut at looser ones)")
    parser.add_argument("--max-hvp", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ref-cache", type=Path, default=REPO / "docs" / "results" / "peers" / "references.json")
    parser.add_argument("--out", type=Path, default=None, help="JSON, read back to resume (a done point is skipped)")
    args = parser.parse_args()
    points = [(m, int(n)) for part in args.points.split(";") if part for m, ns in [part.split(":")] for n in ns.split(",")]
    bf16 = {(m, int(n)) for part in args.bf16.split(";") if part for m, ns in [part.split(":")] for n in ns.split(",")}
    fractions = [float(f) for f in args.fractions.split(",") if f]
    targets = [float(t) for t in args.targets.split(",")]
    device = torch.device("cpu")
    cache = load_json(args.ref_cache)
    report = load_json(args.out) | {"torch": torch.__version__, "threads": torch.get_num_threads(),
                                     "args": {k: str(v) for k, v in vars(args).items()}}  # fmt: skip
    report.setdefault("points", {})
    print(f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads; targets {args.targets}; one run per strategy")
    cifar_needed = max([n for m, n in points if m != "mnist_fc"], default=0)
    cifar = load_cifar(args.cifar, cifar_needed) if cifar_needed else None
    for name, n in points:
        key = f"{name}:{n}"
        if key in report["points"]:
            print(f"{key}: kept from {args.out}")
            continue
        t_point = time.perf_counter()
        setup_args = SimpleNamespace(seed=args.seed, mnist=args.mnist, mnist_samples=n, alexnet_samples=n, resnet_samples=n,
                                     epochs=args.epochs, cifar_epochs=args.cifar_epochs, ref_tol=1e-8)  # fmt: skip
        what, model, data, loss = set_up(name, setup_args, device, cifar)
        strategies = {"cold": ()}
        for f in fractions:
            if round(n * f) >= 8:
                strategies[f"subsample {f:g}"] = (WarmStage(fraction=f),)
        if (name, n) in bf16:
            strategies["bf16"] = (WarmStage(dtype=torch.bfloat16),)
            if args.combined:
                for f in fractions:
                    if round(n * f) >= 8:
                        strategies[f"subsample {f:g} + bf16"] = (WarmStage(fraction=f), WarmStage(dtype=torch.bfloat16))
        load_before = os.getloadavg()[0]
        runs = {label: run_strategy(model, data, stages, args) for label, stages in strategies.items()}
        cached = cache.get(reference_key(name, setup_args, device, "euclidean"))
        if cached is not None and abs(cached["train_loss"] - loss) <= 1e-6 * max(abs(loss), 1e-12):
            reference, ref_kind = cached["value"], "float64 (bench_peers cache)"
        else:
            reference, ref_kind = runs["cold"]["value"], f"float32 cold run at tol {args.final_tol:g}"
        entry = {"description": what, "reference": reference, "reference_kind": ref_kind,
                 "load_before": load_before, "load_after": os.getloadavg()[0], "runs": runs,
                 "analysis": {label: analyse(run, reference, targets) for label, run in runs.items()}}  # fmt: skip
        report["points"][key] = entry
        write_json(args.out, report)
        print(f"\n## {key}: {what}\nreference {reference!r} ({ref_kind}); load {load_before:.2f} -> {entry['load_after']:.2f}; "
              f"{time.perf_counter() - t_point:.0f} s")  # fmt: skip
        print("| strategy | " + " | ".join(f"to {t:g}: s (tol, HVPs)" for t in targets) + " | vs cold |")
        print("|---|" + "---|" * len(targets) + "---|")
        cold = entry["analysis"]["cold"]["best"]
        for label, a in entry["analysis"].items():
            cells, ratio = [], []
            for t in targets:
                b = a["best"][f"{t:g}"]
                cells.append("not reached" if b is None else f"{b['seconds']:.3g} ({b['tol']}, {b['hvp']} + {b['warm_hvp']})")
                if b is not None and cold[f"{t:g}"] is not None:
                    ratio.append(f"{cold[f'{t:g}']['seconds'] / b['seconds']:.2f}")
            print(f"| {label} | " + " | ".join(cells) + f" | {' / '.join(ratio)} |")
        pt = entry["analysis"]["cold"]["per_tol"]
        print("cold, estimated vs true relative error: " + ", ".join(
            f"tol {t}: {v['estimated_error']:.1e} vs {v['true_error']:.1e} ({v['hvp']})" for t, v in pt.items()
            if t in ("0.01", "0.001", "0.0001", "1e-05", "1e-06")))  # fmt: skip
        del model, data
    if args.out:
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
