"""Our flatness engine against PyHessian, curvlinops and hessian-eigenthings (issue 17, item 1).

For each model the top Euclidean Hessian eigenvalue of the mean cross-entropy over the
given samples (eval mode, one batch) is computed by every tool; its relative error is
taken against a float64 Lanczos reference from our engine (``--ref-tol``). Each tool's
accuracy knob is swept from loose to tight and the first setting whose error is
<= ``--target`` (1e-4) is kept: the cheapest on the grid that gets there. That setting
is then run ``--repeats`` times in this process (the sweep's run is the first of them)
and the median time is reported with the HVP count and the peak memory (CPU: peak RSS
above the RSS before the call, via /proc's VmHWM reset; CUDA: max_memory_allocated
above the memory allocated before). Knobs: ours and PyHessian ``tol``, curvlinops
``eigsh(tol=)`` with ``check_deterministic=False`` (its one-time probe is not timed),
hessian-eigenthings ``lanczos(max_iter=)`` (it always runs exactly that many steps).
Our Riemannian measure (what the project reports) runs beside, against its own
float64 reference.

Models: ``mnist_fc`` (784-512x5-10, no biases, 5 epochs of Adam, as bench_flatness),
``alexnet`` (the Chapter 3 CIFAR "AlexNet", ``alexnet_cifar``) and ``resnet18``
(torchvision, 10 classes; batch norm, measured in eval mode) on the CIFAR-10 JPEG copy,
each trained briefly with Adam so the point is not a random init.

The knob grids are fine (every ``max_iter`` from 3 to 12, tolerances a factor of about 2
apart), so no tool is charged for a coarse grid. ``ours-warm`` starts the full-data
Lanczos from the top Ritz vector of a 5 % subsample (``WARM_SUBSAMPLE``); the bfloat16
stage of bench_flatness is left out (on this 2-core CPU its bf16 HVPs cost about what
it saved in float32 ones).

Run: ``PYTHONPATH=src python benchmarks/bench_peers.py [--device cuda] [--models
mnist_fc,alexnet] [--mnist-samples 1000 --repeats 1] [--out peers.json]``. The peers
are the optional extra ``pip install -e '.[bench]'``; a missing one is skipped with a
line saying so. Nothing is downloaded: data come from ``--mnist DIR`` (raw IDX .gz)
and ``--cifar TARBALL`` (``train/<class>/*.jpg``).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib
import io
import json
import statistics
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from bench_flatness import CE, REPO, load_mnist, train_briefly  # benchmarks/ is on sys.path when run
from landscapes.core.flatness import WarmStage, euclidean_spectral_norm, riemannian_spectral_norm
from landscapes.core.models import build_model

INSTALL = "pip install -e '.[bench]'"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TOLS = (1e-1, 5e-2, 3e-2, 2e-2, 1e-2, 5e-3, 3e-3, 2e-3, 1e-3, 5e-4, 3e-4, 2e-4, 1e-4, 5e-5, 3e-5, 1e-5, 3e-6, 1e-6)
STEPS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200)
WARM_SUBSAMPLE = (WarmStage(fraction=0.05),)


def load_cifar(tarball: Path, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count // 10`` training images of each class by file name, standardised per channel.

    Only those are decoded (the tar is streamed once; its member order is not used), so
    the subset is the same whatever order the archive was written in.
    """
    per_class, raw = max(1, count // 10), {}
    with tarfile.open(tarball, "r|*") as tf:
        for member in tf:
            parts = Path(member.name).parts
            if member.isfile() and len(parts) >= 3 and parts[-3] == "train" and parts[-2] in CIFAR_CLASSES:
                raw[(parts[-2], parts[-1])] = tf.extractfile(member).read()
    images, labels = [], []
    for label, cls in enumerate(CIFAR_CLASSES):
        for key in sorted(k for k in raw if k[0] == cls)[:per_class]:
            with Image.open(io.BytesIO(raw[key])) as im:
                images.append(np.asarray(im.convert("RGB")))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    return x, torch.tensor(labels)


class Meter:
    """Wall time and peak memory of one call; CUDA timings are synchronised."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.libc = None if self.cuda else ctypes.CDLL("libc.so.6")

    @staticmethod
    def _status_kb(field: str) -> int:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

    def run(self, fn: Callable):
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            self.libc.malloc_trim(0)  # hand freed heap back, so earlier runs' pages do not hide this one's
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM (peak RSS) to the current RSS
            base = self._status_kb("VmRSS") * 1024
        start = time.perf_counter()
        result = fn()
        if self.cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() if self.cuda else self._status_kb("VmHWM") * 1024
        return result, seconds, max(0, peak - base)


@dataclass
class Tool:
    name: str
    knob: str
    grid: tuple
    fn: Callable  # (model, data, setting, args) -> (value, HVPs)
    metric: str = "euclidean"


def ours(metric: str, warm: bool):
    measure = riemannian_spectral_norm if metric == "riemannian" else euclidean_spectral_norm

    def fn(model, data, tol, args):
        res = measure(model, CE, data, tol=tol, max_hvp=args.max_hvp, seed=args.seed, warm_start=WARM_SUBSAMPLE if warm else ())
        return res.value, (f"{res.num_hvp} + warm {'+'.join(map(str, res.warm_hvp))}" if warm else res.num_hvp)

    return fn


def run_pyhessian(model, data, tol, args):
    ph = importlib.import_module("pyhessian.hessian")  # the module: its package rebinds the name to the class

    calls = [0]
    original = ph.hessian_vector_product

    def counted(*a, **k):
        calls[0] += 1
        return original(*a, **k)

    ph.hessian_vector_product = counted  # eigenvalues() looks the name up in its module: count its HVPs
    try:
        torch.manual_seed(args.seed)  # PyHessian draws its start vector from the global generator
        cuda = data[0].is_cuda
        values, _ = ph.hessian(model, CE, data=data, cuda=cuda).eigenvalues(maxIter=args.max_hvp, tol=tol, top_n=1)
    finally:
        ph.hessian_vector_product = original
        model.zero_grad(set_to_none=True)  # PyHessian leaves .grad holding the first-order graph
    return values[0], calls[0]


def run_curvlinops(model, data, tol, args):
    from curvlinops import HessianLinearOperator
    from scipy.sparse.linalg import LinearOperator, eigsh

    params = [p for p in model.parameters() if p.requires_grad]
    op = HessianLinearOperator(model, CE, params, [data], check_deterministic=False).to_scipy()
    calls = [0]

    def matvec(v):
        calls[0] += 1
        return op @ v

    counted = LinearOperator(op.shape, matvec=matvec, dtype=op.dtype)
    v0 = np.random.default_rng(args.seed).standard_normal(op.shape[0])  # ARPACK's own start is not seeded per call
    value = eigsh(counted, k=1, which="LA", tol=tol, v0=v0, maxiter=args.max_hvp, return_eigenvectors=False)[0]
    return float(value), calls[0]


def run_eigenthings(model, data, max_iter, args):
    from hessian_eigenthings import HessianOperator, lanczos, supervised_loss

    op = HessianOperator(model, [data], supervised_loss(CE))
    result = lanczos(op, k=1, max_iter=max_iter, which="LA", seed=args.seed)
    return float(result.eigenvalues[0]), max_iter


TOOLS = {
    "ours": Tool("ours (Lanczos)", "tol", TOLS, ours("euclidean", False)),
    "ours-warm": Tool("ours (Lanczos, 5 % subsample warm start)", "tol", TOLS, ours("euclidean", True)),
    "pyhessian": Tool("PyHessian 0.1 (power)", "tol", TOLS, run_pyhessian),
    "curvlinops": Tool("curvlinops 3.0.1 (eigsh)", "tol", TOLS, run_curvlinops),
    "eigenthings": Tool("hessian-eigenthings 1.0.0a5 (lanczos)", "max_iter", STEPS, run_eigenthings),
    "ours-riemannian": Tool("ours, Riemannian (Lanczos)", "tol", TOLS, ours("riemannian", False), "riemannian"),
}
PEER_MODULES = {"pyhessian": "pyhessian", "curvlinops": "curvlinops", "eigenthings": "hessian_eigenthings"}


def measure_tool(tool: Tool, model, data, reference: float, meter: Meter, args) -> dict:
    """Sweep the knob loose to tight; time the first setting within ``args.target`` ``args.repeats`` times."""
    sweep = []
    for setting in tool.grid:
        if tool.knob == "max_iter" and setting > args.max_hvp:
            break
        (value, hvps), seconds, peak = meter.run(lambda: tool.fn(model, data, setting, args))
        error = abs(value - reference) / abs(reference)
        sweep.append({"setting": setting, "value": value, "error": error, "hvps": hvps, "seconds": seconds})
        if error <= args.target:
            break
    row = {"tool": tool.name, "metric": tool.metric, "knob": tool.knob, "sweep": sweep, "reached": error <= args.target}
    row |= {"setting": setting, "value": value, "error": error, "hvps": hvps}
    times, peaks = [seconds], [peak]
    if row["reached"]:
        for _ in range(args.repeats - 1):
            _, seconds, peak = meter.run(lambda: tool.fn(model, data, setting, args))
            times.append(seconds)
            peaks.append(peak)
    row |= {"seconds": statistics.median(times), "times": times, "peak_bytes": max(peaks)}
    return row


def set_up(name: str, args, device: torch.device, cifar):
    """(description, trained model in eval mode, (x, y)) on ``device``."""
    torch.manual_seed(args.seed)
    if name == "mnist_fc":
        x, y = load_mnist(args.mnist, args.mnist_samples)
        model = build_model("mnist_fc", in_channels=1, image_size=28, bias=False)
        what = f"MNIST-FC (784-512x5-10, no biases), {len(x)} MNIST training images"
    else:
        count = args.alexnet_samples if name == "alexnet" else args.resnet_samples
        x, y = cifar[0][:count], cifar[1][:count]
        if name == "alexnet":
            model = build_model("alexnet_cifar", in_channels=3, image_size=32, num_classes=10)
            what = f'CIFAR "AlexNet" (alexnet_cifar), {len(x)} CIFAR-10 (JPEG q75 copy) training images'
        else:
            model = build_model("resnet18", in_channels=3, image_size=32, num_classes=10)
            what = f"ResNet-18 (torchvision, 10 classes, batch norm), {len(x)} CIFAR-10 (JPEG q75 copy) training images"
    x, y, model = x.to(device), y.to(device), model.to(device)
    epochs = args.epochs if name == "mnist_fc" else args.cifar_epochs
    model = train_briefly(x, y, epochs, args.seed, model=model).eval()
    with torch.no_grad():
        loss = float(CE(model(x), y))
    return f"{what}, {epochs} epochs of Adam (train loss {loss:.4f})", model, (x, y)


def fmt_setting(row: dict) -> str:
    return f"{row['knob']} {row['setting']:g}"


def print_table(rows: list[dict]) -> None:
    print("| tool | setting | median s | rel. error | HVPs | s / HVP | peak MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        reached = "" if r["reached"] else " (not reached)"
        per = f"{r['seconds'] / r['hvps']:.3g}" if isinstance(r["hvps"], int) else "-"  # warm rows mix two sizes
        print(f"| {r['tool']} | {fmt_setting(r)}{reached} | {r['seconds']:.3g} | {r['error']:.1e} | {r['hvps']} "
              f"| {per} | {r['peak_bytes'] / 2**20:.0f} |")  # fmt: skip
    for r in rows:
        steps = ", ".join(f"{s['setting']:g}: {s['error']:.1e} ({s['hvps']})" for s in r["sweep"])
        print(f"  sweep {r['tool']}, {r['knob']}: error (HVPs) = {steps}")


def summarise(rows: list[dict]) -> str | None:
    """Fastest peer vs our cheapest Euclidean row, both at the target accuracy."""
    peers = [r for r in rows if r["reached"] and not r["tool"].startswith("ours")]
    mine = [r for r in rows if r["reached"] and r["tool"].startswith("ours") and r["metric"] == "euclidean"]
    if not peers or not mine:
        return None
    best, me = min(peers, key=lambda r: r["seconds"]), min(mine, key=lambda r: r["seconds"])
    return (f"fastest peer: {best['tool']} {best['seconds']:.3g} s; fastest of ours: {me['tool']} {me['seconds']:.3g} s; "
            f"peer / ours = {best['seconds'] / me['seconds']:.2f}x (issue target >= 2x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root = REPO.parent / "shared" / "data"
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--models", default="mnist_fc,alexnet,resnet18", help="comma-separated: mnist_fc, alexnet, resnet18")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated subset of {', '.join(TOOLS)}")
    parser.add_argument("--mnist", type=Path, default=data_root / "mnist" / "raw", help="folder of the raw MNIST IDX .gz files")
    parser.add_argument("--cifar", type=Path, default=data_root / "cifar10-jpeg" / "cifar10-jpeg-q75.tar.gz")
    parser.add_argument("--mnist-samples", type=int, default=10_000)
    parser.add_argument("--alexnet-samples", type=int, default=2_000)
    parser.add_argument("--resnet-samples", type=int, default=1_000)
    parser.add_argument("--epochs", type=int, default=5, help="Adam epochs for MNIST-FC")
    parser.add_argument("--cifar-epochs", type=int, default=3, help="Adam epochs for the CIFAR models")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", type=float, default=1e-4, help="relative error each tool must reach")
    parser.add_argument("--ref-tol", type=float, default=1e-8, help="tol of the float64 reference (Lanczos residual)")
    parser.add_argument("--max-hvp", type=int, default=300, help="cap on any one run's HVPs")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the results here as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available in this torch build or machine")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [m for m in models if m not in ("mnist_fc", "alexnet", "resnet18")] + [t for t in tools if t not in TOOLS]
    if bad:
        parser.error(f"unknown model or tool: {', '.join(bad)}")
    for path in [args.mnist] * ("mnist_fc" in models) + [args.cifar] * bool({"alexnet", "resnet18"} & set(models)):
        if not path.exists():
            parser.error(f"{path} does not exist (this benchmark never downloads: pass --mnist DIR / --cifar TARBALL)")
    for tool, module in PEER_MODULES.items():
        if tool in tools:
            try:
                __import__(module)
            except ImportError as err:
                print(f"{TOOLS[tool].name}: skipped, not importable ({err}); install the peers with {INSTALL}")
                tools.remove(tool)

    meter = Meter(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {gpu}, {torch.get_num_threads()} threads; target relative error {args.target:g}; "
          f"medians of {args.repeats}")  # fmt: skip
    cifar = None
    if {"alexnet", "resnet18"} & set(models):
        cifar = load_cifar(args.cifar, max(args.alexnet_samples * ("alexnet" in models), args.resnet_samples * ("resnet18" in models)))
    report = {"torch": torch.__version__, "device": gpu, "threads": torch.get_num_threads(), "args": vars(args) | {
        "mnist": str(args.mnist), "cifar": str(args.cifar), "out": str(args.out)}, "models": {}}  # fmt: skip
    for name in models:
        t0 = time.perf_counter()
        what, model, data = set_up(name, args, device, cifar)
        print(f"\n## {name}: {what}")
        refs = {}
        for metric, measure in (("euclidean", euclidean_spectral_norm), ("riemannian", riemannian_spectral_norm)):
            if metric == "euclidean" or "ours-riemannian" in tools:
                (res, seconds, _) = meter.run(lambda: measure(model, CE, data, tol=args.ref_tol, dtype=torch.float64,
                                                               max_hvp=1000, seed=args.seed))  # fmt: skip
                refs[metric] = res.value
                print(f"float64 reference, {metric}: {res.value!r} ({res.num_hvp} HVPs, tol {args.ref_tol:g}, {seconds:.1f} s)")
        rows = []
        for key in tools:
            rows.append(measure_tool(TOOLS[key], model, data, refs[TOOLS[key].metric], meter, args))
        print()
        print_table(rows)
        line = summarise(rows)
        if line:
            print(line)
        print(f"({name}: {time.perf_counter() - t0:.0f} s in all)")
        report["models"][name] = {"description": what, "references": refs, "rows": rows, "summary": line}
        del model, data
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
