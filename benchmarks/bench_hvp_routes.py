"""Per-HVP cost of the ways to compute a Hessian-vector product in PyTorch (issue 17, item 2: measure only).

For each model (eval mode, one batch of real images, the trained points of
bench_peers), side by side in one process, medians of ``--repeats`` calls after one
warm-up, each in units of one gradient pass (forward + backward):

- ``rr-kept``: reverse-over-reverse with the first-order graph kept (``create_graph``
  once, then ``autograd.grad(g, p, v, retain_graph=True)``): what our engine and
  PyHessian's single-batch path do; the one-time build is reported apart;
- ``rr-rebuilt``: forward + double backward on every HVP (hessian-eigenthings, PyHessian
  with a dataloader, our engine when the graphs do not fit);
- ``fr``: forward-over-reverse, ``torch.func.jvp`` of ``torch.func.grad`` through
  ``functional_call`` (curvlinops' route, without its vmap);
- ``rr-func``: reverse-over-reverse in torch.func (grad of <grad, v>), which unlike the
  autograd routes can be handed to torch.compile;
- ``fr`` and ``rr-func`` under ``torch.compile`` (``--compile``): the first call's time
  (compilation included) is reported separately from the steady per-HVP time.

With ``--peers-json`` (bench_peers.py's ``--out``) it also prints how many HVPs each tool
spent to reach the target accuracy, and what our HVP count would cost on each route.

Run: ``PYTHONPATH=src python benchmarks/bench_hvp_routes.py [--device cuda] [--compile]
[--models mnist_fc,alexnet,resnet18] [--alexnet-samples 256] [--peers-json peers.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.func import functional_call, grad, jvp

from bench_flatness import CE, REPO
from bench_peers import load_cifar, set_up


def timer(device: torch.device):
    """A function that returns the median wall time of ``fn`` over ``repeats`` calls after one warm-up."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def median(fn, repeats: int) -> tuple[float, float]:
        sync()
        start = time.perf_counter()
        fn()
        sync()
        first = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        return statistics.median(times), first

    return median


def routes(model, x, y, compile_: bool) -> dict:
    """name -> zero-argument callable computing one HVP with a fixed random vector."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    buffers = dict(model.named_buffers())
    gen = torch.Generator().manual_seed(0)
    vec = [torch.randn(p.shape, generator=gen).to(p) for p in params]
    pdict, vdict = dict(zip(names, (p.detach() for p in params))), dict(zip(names, vec))

    def loss_of(pd):
        return CE(functional_call(model, pd | buffers, (x,)), y)

    def fr(pd, vd):  # forward-over-reverse: directional derivative of the gradient
        return jvp(grad(loss_of), (pd,), (vd,))[1]

    def rr_func(pd, vd):  # reverse-over-reverse inside torch.func: gradient of <grad, v>
        return grad(lambda q: sum((g * vd[k]).sum() for k, g in grad(loss_of)(q).items()))(pd)

    def rebuilt():
        g = torch.autograd.grad(CE(model(x), y), params, create_graph=True)
        return torch.autograd.grad(g, params, vec)

    def kept():  # builds the first-order graph once and returns the per-HVP call (see measure_model)
        graph = torch.autograd.grad(CE(model(x), y), params, create_graph=True)
        return lambda: torch.autograd.grad(graph, params, vec, retain_graph=True)

    out = {
        "gradient": lambda: torch.autograd.grad(CE(model(x), y), params),
        "rr-kept": kept,
        "rr-rebuilt": rebuilt,
        "fr": lambda: fr(pdict, vdict),
        "rr-func": lambda: rr_func(pdict, vdict),
    }
    if compile_:
        fr_c, rr_c = torch.compile(fr), torch.compile(rr_func)
        out["fr compiled"] = lambda: fr_c(pdict, vdict)
        out["rr-func compiled"] = lambda: rr_c(pdict, vdict)
    return out, params, vec


def measure_model(name, model, data, args, median) -> dict:
    x, y = data
    device = x.device
    table, _, _ = routes(model, x, y, args.compile)
    results = {}
    for route, fn in table.items():
        try:
            if route == "rr-kept":  # its "first call" is the one-time graph build
                start = time.perf_counter()
                fn = fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                build = time.perf_counter() - start
            t, first = median(fn, args.repeats)
            first = build if route == "rr-kept" else first
        except Exception as err:  # a route torch cannot run on this model is a result, not a crash
            print(f"  {route}: failed ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
            continue
        results[route] = {"seconds": t, "first": first}
    unit = results["gradient"]["seconds"]
    print(f"| route | per HVP s | / gradient pass | first call s (build or compile) |")
    print("|---|---|---|---|")
    for route, r in results.items():
        r["gradients"] = r["seconds"] / unit
        print(f"| {route} | {r['seconds']:.4g} | {r['gradients']:.2f} | {r['first']:.3g} |")
    return results


def peer_hvps(path: Path, routes_by_model: dict) -> None:
    """HVPs each tool spent to reach the target, and our HVPs priced on every measured route."""
    report = json.loads(path.read_text())
    print(f"\n## HVPs to reach the target (from {path}, {report['device']})")
    for name, entry in report["models"].items():
        if "rows" not in entry:
            continue
        print(f"\n### {name}\n| tool | setting | HVPs | median s | s per HVP (solver included; warm HVPs counted as full) |\n|---|---|---|---|---|")
        for r in entry["rows"]:
            hvps = r["hvps"]
            count = sum(int(t) for t in str(hvps).replace("warm", "").replace("+", " ").split())
            reached = "" if r["reached"] else " (not reached)"
            print(f"| {r['tool']} | {r['knob']} {r['setting']:g}{reached} | {hvps} | {r['seconds']:.3g} | "
                  f"{r['seconds'] / max(count, 1):.3g} |")  # fmt: skip
        mine = [r for r in entry["rows"] if r["tool"] == "ours (Lanczos)" and r["reached"]]
        measured = routes_by_model.get(name)
        if mine and measured:
            n = mine[0]["hvps"]
            # Ratios, not seconds: the two files come from different processes, whose loads may differ.
            kept = measured["rr-kept"]["seconds"]
            priced = ", ".join(f"{k} {v['seconds'] / kept:.2f}x" for k, v in measured.items() if k != "gradient")
            print(f"ours' {n} HVPs: HVP time on each route relative to rr-kept (what the engine does now): {priced}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data_root = REPO.parent / "shared" / "data"
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="mnist_fc,alexnet,resnet18")
    parser.add_argument("--mnist", type=Path, default=data_root / "mnist" / "raw")
    parser.add_argument("--cifar", type=Path, default=data_root / "cifar10-jpeg" / "cifar10-jpeg-q75.tar.gz")
    parser.add_argument("--mnist-samples", type=int, default=10_000)
    parser.add_argument("--alexnet-samples", type=int, default=2_000)
    parser.add_argument("--resnet-samples", type=int, default=1_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--cifar-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time the torch.func routes under torch.compile")
    parser.add_argument("--peers-json", type=Path, default=None, help="bench_peers.py --out file, for the HVP counts")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peers_json and not args.peers_json.exists():
        parser.error(f"--peers-json {args.peers_json} does not exist (write it with bench_peers.py --out)")
    device = torch.device(args.device)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    median = timer(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {gpu}, {torch.get_num_threads()} threads; medians of {args.repeats} after a warm-up")
    cifar = None
    if {"alexnet", "resnet18"} & set(models):
        cifar = load_cifar(args.cifar, max(args.alexnet_samples * ("alexnet" in models), args.resnet_samples * ("resnet18" in models)))
    measured = {}
    for name in models:
        what, model, data = set_up(name, args, device, cifar)
        print(f"\n## {name}: {what}")
        measured[name] = measure_model(name, model, data, args, median)
        del model, data
    if args.peers_json:
        peer_hvps(args.peers_json, measured)


if __name__ == "__main__":
    main()
