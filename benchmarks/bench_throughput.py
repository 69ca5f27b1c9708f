"""Training throughput of issue 23 (not a test; prints ratios measured side by side in one process).

    PYTHONPATH=src python benchmarks/bench_throughput.py [--device cuda] [--seeds 10] [--steps 50]

For MNIST-FC and LeNet (no biases, as Table 3.7 trains them) at batch 200 and 5000 on
random images of MNIST's shape, two comparisons, each best of ``--repeats`` after a
warm-up, the two sides of a comparison run alternately:

- steps/s of one seed with a host read per step (the loop ``fit`` had before issue 23:
  ``loss.item()``, the correct count and the finite check each step) against ``fit`` now
  (sums kept on the device, read once per epoch);
- seeds/s of ``--seeds`` seeds trained one after the other with ``fit`` against the same
  seeds trained together as one stacked model (``fit_group``).

Every timed run is one epoch of ``--steps`` steps (``steps * batch`` images) with Adam,
without the CE-stop evaluation, so the figures are the training step's alone.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from flatscape.core.models import from_spec, model_spec
from flatscape.core.train import Optimiser, epoch_generator, fit
from flatscape.core.train_group import fit_group

OPT = Optimiser(name="adam", lr=1e-3)


def legacy_epoch(model, images, labels, batch_size, seed) -> None:
    """``fit``'s epoch before issue 23: three host reads per step."""
    opt = OPT.build(model.parameters())
    g = epoch_generator(seed, 0)
    torch.manual_seed(int(torch.randint(2**62, (1,), generator=g)))
    order = torch.randperm(len(images), generator=g)
    running, correct, step = 0.0, 0, 0
    for start in range(0, len(images), batch_size):
        idx = order[start : start + batch_size]
        for group in opt.param_groups:
            group["lr"] = OPT.lr_at(step, 0)
        x, target = images[idx].float().div_(255.0), labels[idx]
        out = model(x)
        loss = F.cross_entropy(out, target)
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        running += loss.item() * len(idx)
        correct += (out.argmax(1) == target).sum().item()


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def best_pair(fa, fb, device, repeats: int) -> tuple[float, float]:
    """Best seconds of ``fa`` and of ``fb``, run alternately (a, b, a, b, ...) after a warm-up of
    each, so that a load that comes and goes on a shared machine falls on both alike."""
    fa(), fb()  # warm-up: kernel selection, allocator, lazy CUDA init
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(_timed(fa, device))
        tb.append(_timed(fb, device))
    return min(ta), min(tb)


def measure(name: str, batch: int, args, device: torch.device) -> dict:
    n = batch * args.steps
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8).to(device)
    labels = torch.randint(0, 10, (n,), generator=g).to(device)
    spec = model_spec(name, in_channels=1, image_size=28, num_classes=10, mean=[0.1307], std=[0.3081], bias=False)

    def net(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return from_spec(spec).to(device)

    seeds = list(range(args.seeds))

    def one_fit(seed=0):
        fit(net(seed), images, labels, epochs=1, batch_size=batch, optimiser=OPT, seed=seed, progress=False)

    def sequential():
        for s in seeds:
            one_fit(s)

    def grouped():
        fit_group([net(s) for s in seeds], images, labels, epochs=1, batch_size=batch, optimiser=OPT, seeds=seeds,
                  progress=False)  # fmt: skip

    sync, nosync = best_pair(lambda: legacy_epoch(net(0), images, labels, batch, 0), one_fit, device, args.repeats)
    seq, grp = best_pair(sequential, grouped, device, args.repeats)
    return {"model": name, "batch": batch, "sync": args.steps / sync, "nosync": args.steps / nosync,
            "alone": args.seeds / seq, "group": args.seeds / grp}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=4, help="seeds trained together (and one after the other)")
    parser.add_argument("--steps", type=int, default=20, help="steps of each timed run (one epoch)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["mnist_fc", "lenet"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[200, 5000])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    for key in ("seeds", "steps", "repeats"):
        if getattr(args, key) < 1:
            parser.error(f"--{key} must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} thread(s)"
    print(f"device {label}, torch {torch.__version__}; {args.steps} steps per run, {args.seeds} seeds, "
          f"best of {args.repeats}")  # fmt: skip
    print(f"{'model':9s} {'batch':>5s} | {'steps/s sync':>12s} {'no sync':>9s} {'ratio':>6s} | "
          f"{'seeds/s alone':>13s} {'together':>9s} {'ratio':>6s}")  # fmt: skip
    for name in args.models:
        for batch in args.batch_sizes:
            r = measure(name, batch, args, device)
            print(f"{r['model']:9s} {r['batch']:5d} | {r['sync']:12.2f} {r['nosync']:9.2f} {r['nosync'] / r['sync']:5.2f}x | "
                  f"{r['alone']:13.3f} {r['group']:9.3f} {r['group'] / r['alone']:5.2f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
