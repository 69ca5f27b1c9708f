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
apart), so no tool is charged for a coarse grid. ``ours`` is the library's default call,
``euclidean_spectral_norm(model, loss, data, tol=...)`` (``warm_start="auto"``: a bfloat16
stage for conv-free networks on CPUs with fast bf16, else a 5 % subsample stage, see
``auto_warm_start``);
``ours-cold`` forces ``warm_start=()`` and ``ours-warm`` forces the 5 % stage
(``WARM_SUBSAMPLE``); our ``tol`` is the eigenvalue's estimated relative error. The
bfloat16 stage of bench_flatness is left out (on this 2-core CPU its bf16 HVPs cost
about what it saved in float32 ones).

The float64 references are cached in ``--ref-cache`` (default
docs/results/peers/references.json), keyed by model, sample count, training epochs,
seed, device and reference tol, and reused when the trained model's loss matches the
cached one to 1e-6; ``--out`` is read back at start and every (model, tool) pair
already in it for the same settings is skipped, and it is rewritten after each row, so
a run that is stopped resumes where it was. Each row records the 1-minute load average
before and after it (the CPU machine is shared). On CUDA the sweep's run is a warm-up
and the ``--repeats`` timed runs come after it.

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
import os
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
from flatscape.core.flatness import WarmStage, euclidean_spectral_norm, riemannian_spectral_norm
from flatscape.core.models import build_model

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


def ours(metric: str, warm):
    """Our measure; ``warm`` None: the default call (no ``warm_start`` argument), else passed as is."""
    measure = riemannian_spectral_norm if metric == "riemannian" else euclidean_spectral_norm

    def fn(model, data, tol, args):
        kw = {} if warm is None else {"warm_start": warm}
        res = measure(model, CE, data, tol=tol, max_hvp=args.max_hvp, seed=args.seed, **kw)
        return res.value, (f"{res.num_hvp} + warm {'+'.join(map(str, res.warm_hvp))}" if res.warm_hvp else res.num_hvp)

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
    "ours": Tool("ours, default call (Lanczos, warm_start='auto')", "tol", TOLS, ours("euclidean", None)),
    "ours-cold": Tool("ours, cold (warm_start=())", "tol", TOLS, ours("euclidean", ())),
    "ours-warm": Tool("ours, 5 % subsample warm start forced", "tol", TOLS, ours("euclidean", WARM_SUBSAMPLE)),
    "pyhessian": Tool("PyHessian 0.1 (power)", "tol", TOLS, run_pyhessian),
    "curvlinops": Tool("curvlinops 3.0.1 (eigsh)", "tol", TOLS, run_curvlinops),
    "eigenthings": Tool("hessian-eigenthings 1.0.0a5 (lanczos)", "max_iter", STEPS, run_eigenthings),
    "ours-riemannian": Tool("ours, Riemannian, default call", "tol", TOLS, ours("riemannian", None), "riemannian"),
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
    if meter.cuda and row["reached"]:  # the sweep's runs paid the lazy CUDA set-up (handles, kernels): time fresh runs
        times, peaks = [], []
    if row["reached"]:
        for _ in range(args.repeats - len(times)):
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
    return f"{what}, {epochs} epochs of Adam (train loss {loss:.4f})", model, (x, y), loss


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
    """Fastest peer vs our default call (the ``ours`` row), both at the target accuracy."""
    peers = [r for r in rows if r.get("reached") and not r["tool"].startswith("ours")]
    mine = [r for r in rows if r.get("reached") and r["tool"] == TOOLS["ours"].name]
    if not peers or not mine:
        return None
    best, me = min(peers, key=lambda r: r["seconds"]), mine[0]
    return (f"fastest peer: {best['tool']} {best['seconds']:.3g} s; ours, default call: {me['seconds']:.3g} s; "
            f"peer / ours = {best['seconds'] / me['seconds']:.2f}x (issue target >= 2x)")  # fmt: skip


def reference_key(name: str, args, device: torch.device, metric: str) -> str:
    count = {"mnist_fc": args.mnist_samples, "alexnet": args.alexnet_samples, "resnet18": args.resnet_samples}[name]
    epochs = args.epochs if name == "mnist_fc" else args.cifar_epochs
    return f"{name}|samples={count}|epochs={epochs}|seed={args.seed}|device={device.type}|ref_tol={args.ref_tol:g}|{metric}"


def cached_reference(cache: dict, key: str, loss: float, compute: Callable[[], dict]) -> dict:
    """The cached float64 reference for ``key`` when it was taken at a model with this train
    loss (so a changed training run is not matched), else ``compute()`` stored in ``cache``."""
    hit = cache.get(key)
    if hit is not None and abs(hit["train_loss"] - loss) <= 1e-6 * max(abs(loss), 1e-12):
        return hit | {"cached": True}
    cache[key] = compute() | {"train_loss": loss}
    return cache[key] | {"cached": False}


def row_key(name: str, tool: str, args) -> str:
    """Settings that make a stored row reusable on resume (the reference key plus the protocol)."""
    ref = reference_key(name, args, torch.device(args.device), TOOLS[tool].metric)
    return f"{ref}|tool={tool}|target={args.target:g}|repeats={args.repeats}|max_hvp={args.max_hvp}"


def load_json(path: Path | None) -> dict:
    return json.loads(path.read_text()) if path is not None and path.exists() else {}


def write_json(path: Path | None, payload: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=str))
        tmp.replace(path)  # a run stopped mid-write leaves the previous file whole


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
    parser.add_argument("--out", type=Path, default=None, help="write the results here as JSON (read back to resume)")
    parser.add_argument("--ref-cache", type=Path, default=REPO / "docs" / "results" / "peers" / "references.json",
                        help="float64 references, computed once and reused (see the module docstring)")
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
    for path, needs in ((args.mnist, {"mnist_fc"}), (args.cifar, {"alexnet", "resnet18"})):
        if needs & set(models) and not path.exists():  # the other models still run
            print(f"{path} does not exist (this benchmark never downloads: pass --mnist DIR / --cifar TARBALL): "
                  f"skipping {', '.join(sorted(needs & set(models)))}")  # fmt: skip
            models = [m for m in models if m not in needs]
    if not models:
        parser.error("no model has its data")
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
    report = load_json(args.out)
    report |= {"torch": torch.__version__, "device": gpu, "threads": torch.get_num_threads(),
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    report.setdefault("models", {})
    cache = load_json(args.ref_cache)
    for name in models:
        t0 = time.perf_counter()
        load_before = os.getloadavg()[0]
        what, model, data, train_loss = set_up(name, args, device, cifar)
        print(f"\n## {name}: {what}")
        entry = report["models"].setdefault(name, {})
        entry["description"] = what
        stored = {r["key"]: r for r in entry.get("rows", []) if "key" in r and "failed" not in r}
        refs = {}
        for metric, measure in (("euclidean", euclidean_spectral_norm), ("riemannian", riemannian_spectral_norm)):
            if metric == "euclidean" or "ours-riemannian" in tools:

                def compute(measure=measure) -> dict:
                    (res, seconds, _) = meter.run(lambda: measure(model, CE, data, tol=args.ref_tol, dtype=torch.float64,
                                                                   max_hvp=1000, seed=args.seed, warm_start=()))  # fmt: skip
                    return {"value": res.value, "hvps": res.num_hvp, "seconds": seconds}

                ref = cached_reference(cache, reference_key(name, args, device, metric), train_loss, compute)
                write_json(args.ref_cache, cache)
                refs[metric] = ref["value"]
                print(f"float64 reference, {metric}: {ref['value']!r} ({ref['hvps']} HVPs, tol {args.ref_tol:g}, "
                      f"{ref['seconds']:.1f} s{', cached' if ref['cached'] else ''})")  # fmt: skip
        entry["references"] = refs
        rows = []
        for key in tools:
            rk = row_key(name, key, args)
            if rk in stored:
                print(f"{TOOLS[key].name}: kept from {args.out} (resume)")
                rows.append(stored[rk])
                continue
            before = os.getloadavg()[0]
            try:
                row = measure_tool(TOOLS[key], model, data, refs[TOOLS[key].metric], meter, args)
            except Exception as err:  # one tool's failure (a peer on an untested setup) must not lose the others
                print(f"{TOOLS[key].name}: failed: {type(err).__name__}: {err}")
                row = {"tool": TOOLS[key].name, "metric": TOOLS[key].metric, "failed": f"{type(err).__name__}: {err}"}
            row |= {"key": rk, "load_before": before, "load_after": os.getloadavg()[0]}
            rows.append(row)
            if "failed" not in row:
                print(f"  {row['tool']}: {fmt_setting(row)}, {row['seconds']:.3g} s, error {row['error']:.1e} "
                      f"(load {before:.1f} -> {row['load_after']:.1f})", flush=True)  # fmt: skip
                done = {r["key"] for r in rows}
                entry["rows"] = rows + [r for k, r in stored.items() if k not in done]
                write_json(args.out, report)
        entry["rows"] = rows
        print()
        print_table([r for r in rows if "failed" not in r])
        line = summarise(rows)
        if line:
            print(line)
        entry |= {"summary": line, "load_before": load_before, "load_after": os.getloadavg()[0]}
        print(f"({name}: {time.perf_counter() - t0:.0f} s in all; 1-minute load {load_before:.1f} before, "
              f"{entry['load_after']:.1f} after)")  # fmt: skip
        write_json(args.out, report)
        del model, data
    if args.out:
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
