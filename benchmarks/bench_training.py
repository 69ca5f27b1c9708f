"""Training throughput: ``flatscape.core.train`` against a plain torchvision loop (not a test; prints ratios).

    PYTHONPATH=src python benchmarks/bench_training.py [--model mnist_fc] [--batch-size 200] [--threads 1]

Both loops train the same network with the same optimiser for whole epochs over the
same 28x28 uint8 images. The baseline is what most research code does: a
``torch.utils.data.Dataset`` that returns one PIL image per index (exactly like
``torchvision.datasets.MNIST.__getitem__``) through ``transforms.ToTensor()``, batched by
a ``DataLoader`` (``--workers`` processes, 0 by default). Ours keeps the images as one
uint8 tensor and slices shuffled batches from it (``fit``). Images are
random (throughput does not depend on content); ``--mnist`` reads the real MNIST npz.
Prints samples/s for each and the ratio, best of ``--repeats`` epochs after a warm-up.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from flatscape.core.models import build_model
from flatscape.core.train import Optimiser, fit


class PilImages(Dataset):
    """torchvision's MNIST item path: uint8 array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.transform = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i, 0], mode="L")
        return self.transform(img), int(self.labels[i])


def baseline_epoch(model, loader, opt) -> None:
    model.train()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mnist_fc", choices=["mnist_fc", "lenet", "f1", "c1"])
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--mnist", default=None, help="a results/<preset>/datasets/mnist.npz to use instead of random images")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.mnist:
        from flatscape.core.datasets import load

        data = load(args.mnist)
        images, labels = data.x_train[: args.samples], data.y_train[: args.samples]
    else:
        g = np.random.default_rng(0)
        images = g.integers(0, 256, (args.samples, 1, 28, 28), dtype=np.uint8)
        labels = g.integers(0, 10, args.samples).astype(np.int64)

    def fresh():
        torch.manual_seed(0)
        model = build_model(args.model, in_channels=1, image_size=28, bias=False)
        return model, Optimiser(name="adam", lr=1e-3)

    model, opt_cfg = fresh()
    opt = opt_cfg.build(model.parameters())
    loader = DataLoader(PilImages(images, labels), batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    baseline_epoch(model, loader, opt)  # warm-up
    base = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        baseline_epoch(model, loader, opt)
        base.append(time.perf_counter() - t0)

    model, opt_cfg = fresh()
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    ours = []
    for r in range(args.repeats + 1):
        t0 = time.perf_counter()
        fit(model, x, y, epochs=1, batch_size=args.batch_size, optimiser=opt_cfg, seed=r, progress=False)
        if r:  # the first is the warm-up
            ours.append(time.perf_counter() - t0)

    # The input path alone (no model): what the tensor-resident design removes.
    def loader_only():
        for xb, yb in loader:
            pass

    def slices_only():
        order = torch.randperm(len(x))
        for i in range(0, len(x), args.batch_size):
            idx = order[i : i + args.batch_size]
            xb, yb = x[idx].float().div_(255.0), y[idx]

    io = {}
    for name, fn in (("loader", loader_only), ("slices", slices_only)):
        fn()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        io[name] = len(images) / min(times)

    n = len(images)
    b, o = n / min(base), n / min(ours)
    print(f"model {args.model}, batch {args.batch_size}, {n} images, {args.threads} thread(s), {args.workers} loader worker(s)")
    print(f"  DataLoader + ToTensor : {b:10.0f} samples/s")
    print(f"  flatscape.core.train      : {o:10.0f} samples/s")
    print(f"  ratio                 : {o / b:10.2f}x")
    print("input path alone (no model):")
    print(f"  DataLoader + ToTensor : {io['loader']:10.0f} samples/s")
    print(f"  uint8 tensor slices   : {io['slices']:10.0f} samples/s")
    print(f"  ratio                 : {io['slices'] / io['loader']:10.2f}x")


if __name__ == "__main__":
    main()
