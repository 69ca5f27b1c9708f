"""What the `paper` preset costs: measured seconds per training sample of every paper network
on this machine, times samples per epoch, epochs and runs, scaled to GPU-hours by a stated factor.

For each training job kind of config/paper.yaml the script builds the network from the
registry and times ``flatscape.core.train.fit`` (Chapters 3 and 4a: the real training
path, on random uint8 images of the real shape, since cost does not depend on pixel
values) over a few batches; for Chapter 4b's YOLO detectors it times a forward and
backward pass of Ultralytics' DetectionModel built from the yaml (no data loading, no
augmentation, no loss assignment: a lower bound of a YOLO step). Then

    CPU hours = seconds per sample x samples per epoch x epochs x runs / 3600
    GPU hours = CPU hours / factor,  factor = GPU_TFLOPS / (this CPU's measured fp32 matmul TFLOP/s)

with GPU_TFLOPS (default 20, about one A100's dense fp32 rate) stated on the command line.
With ``--device cuda`` the seconds per sample are measured on that GPU and its hours are
printed directly (no factor). Epoch counts are the caps: Chapter 3 runs stop earlier once
their loss threshold is met. Flatness measurements are not included.
Run: ``PYTHONPATH=src python benchmarks/bench_paper_costs.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from flatscape.ch4.detection.yolo import ultralytics_offline
from flatscape.core.models import build_model
from flatscape.core.train import Optimiser, fit

REPO = Path(__file__).resolve().parents[1]


DEVICE = torch.device("cpu")
STEPS = 3


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def matmul_tflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, device=DEVICE), torch.randn(n, n, device=DEVICE)
    a @ b
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e12


def fit_seconds_per_sample(name: str, shape: tuple[int, int, int], batch: int, *, copies: int = 1, loss=None,
                           **options) -> float:  # fmt: skip
    """Seconds per training sample of ``fit`` (after one warm-up step), ``copies`` as virtual copies."""
    c, h, _ = shape
    torch.manual_seed(0)
    model = build_model(name, in_channels=c, image_size=h, num_classes=10, **options).to(DEVICE)
    n = batch * STEPS
    x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8)
    y = torch.randint(0, 10, (n,))
    extra = {} if loss is None else {"loss": loss, "transform": lambda b, idx, g: (b, b)}
    opt = Optimiser(name="sgd", lr=1e-3)
    fit(model, x[:batch], y[:batch], epochs=1, batch_size=batch, optimiser=opt, seed=0, progress=False, **extra)
    sync()
    t0 = time.perf_counter()
    fit(model, x, y, epochs=1, batch_size=batch, optimiser=opt, seed=0, progress=False, virtual_copies=copies, **extra)
    sync()
    return (time.perf_counter() - t0) / (n * copies)


def yolo_seconds_per_sample(cfg: str, imgsz: int, batch: int = 4) -> float:
    ultralytics_offline(tempfile.mkdtemp(prefix="bench-ultralytics-"))
    # Imported here: Ultralytics must be configured offline first.
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(cfg, nc=20, verbose=False).to(DEVICE).train()
    x = torch.rand(batch, 3, imgsz, imgsz, device=DEVICE)

    def tensors(out):
        # Train-mode outputs are a tensor, a list of per-scale maps or (newer Ultralytics) a dict of them.
        if torch.is_tensor(out):
            return [out]
        items = out.values() if isinstance(out, dict) else out
        return [t for item in items for t in tensors(item)]

    def step():
        sum(t.float().mean() for t in tensors(model(x))).backward()

    step()
    sync()
    t0 = time.perf_counter()
    for _ in range(STEPS):
        step()
    sync()
    return (time.perf_counter() - t0) / (batch * STEPS)


def jobs(cfg: dict) -> list[dict]:
    """One entry per training job kind of the config: (chapter, what, seconds-per-sample thunk, samples x epochs x runs)."""
    out = []
    sizes = {"mnist": 60000, "kmnist": 60000, "fashion_mnist": 60000, "cifar10": 50000}
    for row in cfg["ch3"]["minima"]["rows"]:
        shape = (3, 32, 32) if row["dataset"] == "cifar10" else (1, 28, 28)
        n = row["train_size"] or sizes[row["dataset"]]
        for batch in ("small", "large"):
            b = row[batch]
            out.append({"chapter": "3", "job": f"{row['dataset']}/{row['network']} batch {b['batch_size']}",
                        "key": (row["network"], shape, b["batch_size"], row["bias"]),
                        "per_sample": lambda r=row, s=shape, bs=b["batch_size"]: fit_seconds_per_sample(
                            r["network"], s, bs, bias=r["bias"]),
                        "samples": n * b["epochs"] * row["seeds"], "epochs": b["epochs"], "runs": row["seeds"]})  # fmt: skip
    p = cfg["ch4"]["partial"]
    m, t = p["model"], p["train"]
    for method, copies in (("vgg16", 1), ("vgg16_ours", 1 + len(p["train_ratios"]))):
        out.append({"chapter": "4a", "job": f"{method} ({m['name']}, width {m['width']}, batch {t['batch_size']})",
                    "per_sample": lambda: fit_seconds_per_sample(
                        m["name"], (3, 32, 32), t["batch_size"], width=m["width"], batch_norm=m["batch_norm"]),
                    "samples": 50000 * copies * t["epochs"], "epochs": t["epochs"], "runs": 1})  # fmt: skip
    a = p["autoencoder"]
    out.append({"chapter": "4a", "job": f"autoencoders (width {a['width']}) x {len(a['ratios'])}",
                "per_sample": lambda: fit_seconds_per_sample("autoencoder", (3, 32, 32), a["train"]["batch_size"],
                                                             width=a["width"], loss=torch.nn.functional.mse_loss),
                "samples": 50000 * a["train"]["epochs"] * len(a["ratios"]), "epochs": a["train"]["epochs"],
                "runs": len(a["ratios"])})  # fmt: skip
    d = cfg["ch4"]["detection"]
    frames = d["scenes"]["frames"] * 3 * d["scenes"]["videos_per_class"]  # day-1 videos, one per class
    coded = frames // d["pce"]["frames_per_code"] * len(d["pce"]["train_fractions"])
    det = d["detector"]
    out.append({"chapter": "4b", "job": f"detector {det['model']} at {det['imgsz']} px",
                "per_sample": lambda: yolo_seconds_per_sample(det["model"], det["imgsz"]),
                "samples": (frames // det["raw_stride"] + coded) * det["epochs"], "epochs": det["epochs"], "runs": 1})
    pd_ = d["partial"]["detector"]
    copies = 1 + len(d["partial"]["train_ratios"])
    out.append({"chapter": "4b (Fig. 4.2c)", "job": f"2 detectors {pd_['model']} at {pd_['imgsz']} px (VOC 2007)",
                "per_sample": lambda: yolo_seconds_per_sample(pd_["model"], pd_["imgsz"]),
                "samples": 5011 * (1 + copies) * pd_["epochs"], "epochs": pd_["epochs"], "runs": 2})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config/paper.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-tflops", type=float, default=20.0, help="the GPU's sustained fp32 TFLOP/s (the stated factor)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to measure on the GPU itself")
    parser.add_argument("--steps", type=int, default=None, help="timed batches per job (default 3 on CPU, 20 on a GPU)")
    parser.add_argument("--chapters", default=None, help="only these chapters' jobs, e.g. 4b (comma-separated prefixes)")
    args = parser.parse_args()
    global DEVICE, STEPS
    DEVICE = torch.device(args.device)
    STEPS = args.steps or (3 if DEVICE.type == "cpu" else 20)
    torch.set_num_threads(args.threads)
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg = {**base, **yaml.safe_load(Path(args.config).read_text())}
    rate = matmul_tflops(4096 if DEVICE.type == "cuda" else 2048)
    if DEVICE.type == "cuda":
        factor, where = 1.0, torch.cuda.get_device_name(DEVICE)
        print(f"measured on {where}: {rate:.1f} TFLOP/s fp32 matmul; GPU hours are measured, not scaled")
    else:
        factor, where = args.gpu_tflops / rate, "CPU"
        print(f"this CPU: {rate * 1000:.0f} GFLOP/s fp32 matmul with {args.threads} threads; "
              f"GPU at {args.gpu_tflops:g} TFLOP/s -> factor {factor:.0f}")  # fmt: skip
    print(f"| chapter | training job | ms per sample ({where}) | samples x epochs x runs | {where} hours | GPU hours |")
    print("| --- | --- | --- | --- | --- | --- |")
    totals: dict[str, float] = {}
    cache: dict = {}
    wanted = None if args.chapters is None else tuple(args.chapters.split(","))
    for job in jobs(cfg):
        if wanted and not job["chapter"].startswith(wanted):
            continue
        key = job.get("key") or job["job"]
        if key not in cache:
            cache[key] = job["per_sample"]()
        hours = cache[key] * job["samples"] / 3600
        totals[job["chapter"][:2].strip()] = totals.get(job["chapter"][:2].strip(), 0.0) + hours
        print(f"| {job['chapter']} | {job['job']} | {1000 * cache[key]:.4f} | {job['samples']:,} | "
              f"{hours:,.0f} | {hours / factor:,.1f} |", flush=True)  # fmt: skip
    for chapter, hours in totals.items():
        print(f"| {chapter} | total | | | {hours:,.0f} | {hours / factor:,.1f} |")


if __name__ == "__main__":
    main()
