"""Per-HVP time and peak memory of the Chapter 3 VGG16 (``vgg16_cifar``) on CIFAR-10 images (issue 17, item 4).

Our operator (``CurvatureOperator``) at the network's initial point, eval mode, the
mean cross-entropy over ``--samples`` images of the CIFAR-10 JPEG copy (the first of each
class, as bench_peers reads them): the first HVP (which builds the first-order graph),
then the median time of one Riemannian and one Euclidean HVP, in one batch with the graph
kept and in micro-batches of ``--batch-size`` with the graph rebuilt at every product
(``reuse_graph=False``, what a model too large to keep its graphs costs), with the peak
memory above what was allocated before. A point's values do not change the
cost of an HVP, so the network is not trained.

Run: ``PYTHONPATH=src python benchmarks/bench_vgg16_hvp.py --device cuda [--samples 2000]``.
"""

import argparse
import statistics
from pathlib import Path

import torch

from bench_flatness import CE, REPO  # benchmarks/ is on sys.path when run
from bench_peers import Meter, load_cifar
from flatscape.core.flatness import CurvatureOperator
from flatscape.core.models import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cifar", type=Path, default=REPO.parent / "shared/data/cifar10-jpeg/cifar10-jpeg-q75.tar.gz")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=500, help="micro-batch of the rebuilt-graph rows")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    x, y = load_cifar(args.cifar, args.samples)
    x, y = x.to(device), y.to(device)
    model = build_model("vgg16_cifar", in_channels=3, image_size=32, num_classes=10, bias=True).to(device).eval()
    meter = Meter(device)
    params = sum(p.numel() for p in model.parameters())
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"VGG16 ({params / 1e6:.1f} M parameters), {len(y)} CIFAR-10 images, float32, on {where}")
    print("| metric | batches | first HVP (s) | HVP median (s) | peak memory (GiB) |")
    print("| --- | --- | --- | --- | --- |")
    for metric in ("riemannian", "euclidean"):
        for batch_size in (None, args.batch_size):
            op = CurvatureOperator(model, CE, (x, y), metric=metric, batch_size=batch_size,
                                   reuse_graph=batch_size is None)  # fmt: skip
            v = torch.randn(op.shape[0], device=device)
            _, first, first_mem = meter.run(lambda: op.matvec(v))
            times, peaks = [], [first_mem]
            for _ in range(args.repeats):
                _, seconds, peak = meter.run(lambda: op.matvec(v))
                times.append(seconds)
                peaks.append(peak)
            label = "1 (kept)" if batch_size is None else f"{len(y) // batch_size} x {batch_size} (rebuilt)"
            print(f"| {metric} | {label} | {first:.4f} | {statistics.median(times):.4f} | "
                  f"{max(peaks) / 2**30:.2f} |", flush=True)  # fmt: skip
            del op


if __name__ == "__main__":
    main()
