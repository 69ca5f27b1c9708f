"""Chapter 4a: classifying partially observed images without reconstruction (Sec. 4.3, 4.4.1).

``VGG-16`` trains on full images; ``VGG-16-Ours`` on full images plus copies observed
at a few ratios (0.5, 0.25, 0.125), with fresh masks every batch. The baselines
``Recon+VGG-16`` and ``Recon+VGG-16-Ours`` first pass each observed image through
a denoising convolutional autoencoder trained for its ratio (one per ratio 0.1 ...
0.9). Every method is tested on images observed at ratios 1.0 ... 0.1 and at a
random ratio per image.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from landscapes.core.encoders import observation_mask
from landscapes.pipeline.naming import ratio_label  # noqa: F401 (re-exported: results are named by it)

METHODS = {
    "vgg16": "VGG-16",
    "vgg16_ours": "VGG-16-Ours",
    "recon_vgg16": "Recon+VGG-16",
    "recon_vgg16_ours": "Recon+VGG-16-Ours",
}

# The thesis's Table 4.1 (CIFAR-10), printed beside ours for comparison only.
THESIS_TABLE_4_1 = {
    "VGG-16": [0.93, 0.51, 0.21, 0.12, 0.11, 0.11, 0.11, 0.11, 0.12, 0.13, 0.19],
    "VGG-16-Ours": [0.81, 0.81, 0.81, 0.80, 0.80, 0.80, 0.80, 0.79, 0.77, 0.71, 0.76],
    "Recon+VGG-16": [0.93, 0.93, 0.93, 0.92, 0.91, 0.89, 0.86, 0.79, 0.65, 0.35, math.nan],
    "Recon+VGG-16-Ours": [0.81, 0.81, 0.81, 0.81, 0.81, 0.80, 0.80, 0.78, 0.74, 0.62, math.nan],
}
THESIS_COLUMNS = ["1.0", "0.9", "0.8", "0.7", "0.6", "0.5", "0.4", "0.3", "0.2", "0.1", "Random"]

_VGG_CFGS = {
    "vgg11": [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    "vgg16": [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"],
}


def build_vgg(name: str, *, in_channels: int, image_size: int, num_classes: int, width: int = 64, batch_norm: bool = True) -> nn.Module:
    """The CIFAR-10 VGG (Simonyan & Zisserman's conv stack, one linear classifier on the pooled features).

    Channel counts are ``width`` times the multipliers of the VGG configuration (64,
    128, 256, 512 at ``width=64``). Pooling stops once the feature map is 1x1, so
    the same definition runs on 8x8 digits.
    """
    if name not in _VGG_CFGS:
        raise ValueError(f"unknown VGG {name!r}; choose from {sorted(_VGG_CFGS)}")
    layers: list[nn.Module] = []
    channels, size = in_channels, image_size
    for item in _VGG_CFGS[name]:
        if item == "M":
            if size > 1:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        out = width * item
        layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)


def augment(x: torch.Tensor, g: torch.Generator, *, translate: int, flip: bool, rotate_deg: float) -> torch.Tensor:
    """Random translations (whole pixels), horizontal flips and rotations of a batch (Sec. 4.4.1)."""
    n, _, h, w = x.shape
    if flip:
        flips = torch.rand(n, generator=g) < 0.5
        x = torch.where(flips.to(x.device)[:, None, None, None], x.flip(3), x)
    if translate == 0 and rotate_deg == 0:
        return x
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(rotate_deg)
    shift = torch.randint(-translate, translate + 1, (n, 2), generator=g).to(torch.float32)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0] * 2 / w], 1), torch.stack([sin, cos, shift[:, 1] * 2 / h], 1)], 1
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def observe_copies(x: torch.Tensor, idx: torch.Tensor, g: torch.Generator, *, num_images: int, ratios: list[float]) -> torch.Tensor:
    """Partially observe the rows of a batch that belong to copy ``k >= 1`` at ``ratios[k - 1]``.

    Copy 0 (``idx < num_images``) stays full. Masks are fresh for every batch: their
    seed is drawn from the epoch's generator, so runs stay reproducible.
    """
    copy = (idx // num_images).cpu()
    mask_seed = int(torch.randint(2**31 - 1, (1,), generator=g))
    if not bool((copy > 0).any()):
        return x
    keep = torch.ones(x.shape[0], x.shape[2], x.shape[3], dtype=torch.bool)
    for k, ratio in enumerate(ratios, start=1):
        rows = torch.nonzero(copy == k).flatten()
        if len(rows):
            mask, _ = observation_mask(len(rows), x.shape[2], x.shape[3], ratio, seed=mask_seed, index_offset=k * len(x))
            keep[rows] = torch.from_numpy(mask)
    return x * keep.to(x.device)[:, None].to(x.dtype)


@torch.no_grad()
def classify_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    recon: "Reconstructor | None" = None,
    ratios: torch.Tensor | None = None,
) -> tuple[float, float]:
    """Accuracy on uint8 ``images`` and the wall time to classify them all (synchronised on GPU).

    With ``recon`` each batch is first reconstructed (routed by the images' ``ratios``)
    inside the timed region, which is what reconstruct-then-classify costs.
    """
    device = next(model.parameters()).device
    model.eval()
    if recon is not None:
        recon.eval()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div_(255.0)
        if recon is not None:
            x = recon(x, ratios[start : start + batch_size])
        correct += (model(x).argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return correct / len(images), time.perf_counter() - t0


def table_4_1(records: list[dict], ratio_columns: list[str]) -> pd.DataFrame:
    """Table 4.1: accuracy per method (rows) and observation ratio (columns), the thesis's rows beside ours."""
    ours = pd.DataFrame(records).pivot(index="method", columns="ratio", values="accuracy")
    ours = ours.reindex(columns=ratio_columns)
    ours.insert(0, "source", "this run")
    rows = [ours.reset_index()]
    thesis = pd.DataFrame(THESIS_TABLE_4_1, index=THESIS_COLUMNS).T
    thesis = thesis.reindex(columns=ratio_columns)
    thesis.insert(0, "source", "thesis (CIFAR-10)")
    rows.append(thesis.reset_index(names="method"))
    table = pd.concat(rows, ignore_index=True)
    order = {name: i for i, name in enumerate(THESIS_TABLE_4_1)}
    table["_order"] = table["method"].map(order).fillna(len(order))
    return table.sort_values(["_order", "source"], ascending=[True, False]).drop(columns="_order").reset_index(drop=True)


def plot_against_ratio(table: pd.DataFrame, columns: list[str], path, *, ylabel: str, title: str) -> None:
    """One line per row of ``table`` (labelled by its ``method``) over the ratio ``columns``,
    ratio decreasing to the right as in the thesis's Figure 4.2; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from landscapes.pipeline.io import save_figure

    xs = np.array([float(c) for c in columns])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for _, row in table.iterrows():
        ax.plot(xs, row[columns].to_numpy(dtype=float), marker="o", label=row["method"])
    ax.set_xlabel("partial observation ratio")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    save_figure(fig, path)


def plot_figure_4_2a(table: pd.DataFrame, path) -> None:
    """Figure 4.2a: accuracy against observation ratio, one line per method of this run."""
    numeric = [c for c in table.columns if c not in ("method", "source", "Random")]
    plot_against_ratio(table[table["source"] == "this run"], numeric, path, ylabel="test accuracy",
                       title="Figure 4.2a: accuracy under partial observation")  # fmt: skip


def eval_mask_seed(seed: int, ratio: float | str) -> int:
    """Seed of the fixed test masks at one ratio: independent masks per ratio, fixed by ``seed``."""
    code = 1001 if ratio == "random" else int(round(float(ratio) * 1000))
    return seed * 10_007 + code


def train_partial_classifier(
    data_path,
    *,
    model_cfg: dict,
    train_cfg: dict,
    train_ratios: list[float],
    seed: int,
    device: torch.device,
    model_path,
    metrics_path,
    checkpoint_path=None,
    progress: bool = True,
) -> dict:
    """Train one Sec. 4.4.1 classifier on a cached data set and save weights and metrics.

    ``train_ratios`` empty gives VGG-16 (full images only); otherwise every epoch
    passes over the full images and one partially observed copy per ratio.
    """
    from pathlib import Path

    from landscapes.core.datasets import load
    from landscapes.pipeline.io import save_checkpoint, save_json
    from landscapes.core.train import Normalise, Optimiser, channel_stats, evaluate, fingerprint, train_classifier

    data = load(data_path)
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    mean, std = channel_stats(x)
    spec = {
        "model": dict(model_cfg),
        "in_channels": int(x.shape[1]),
        "image_size": int(x.shape[2]),
        "num_classes": int(len(data.classes)),
        "mean": mean,
        "std": std,
    }
    torch.manual_seed(seed)
    model = _classifier_from_spec(spec).to(device)
    aug = train_cfg["augment"]
    num_images = len(x)

    def transform(batch, idx, g):
        batch = augment(batch, g, translate=aug["translate"], flip=aug["flip"], rotate_deg=aug["rotate_deg"])
        return observe_copies(batch, idx, g, num_images=num_images, ratios=list(train_ratios))

    result = train_classifier(
        model,
        x.to(device),
        y.to(device),
        epochs=train_cfg["epochs"],
        batch_size=train_cfg["batch_size"],
        optimiser=Optimiser(**train_cfg["optimiser"]),
        seed=seed,
        transform=transform,
        virtual_copies=1 + len(train_ratios),
        checkpoint_path=checkpoint_path,
        checkpoint_every=train_cfg["checkpoint_every"],
        fingerprint=fingerprint([spec, train_cfg, list(train_ratios), seed]),
        progress=progress,
    )
    test_loss, test_acc = evaluate(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test))
    save_checkpoint(model_path, {"spec": spec, "state_dict": model.state_dict()})
    metrics = {
        "train_ratios": list(train_ratios),
        "epochs_run": result.epochs_run,
        "train_loss": result.train_loss,
        "train_accuracy": result.train_accuracy,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "seconds": result.seconds,
        "device": str(device),
        "history": result.history,
    }
    save_json(metrics_path, metrics)
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        Path(checkpoint_path).unlink()  # the finished model supersedes it
    return metrics


def _classifier_from_spec(spec: dict) -> nn.Module:
    from landscapes.core.train import Normalise

    m = spec["model"]
    net = build_vgg(m["name"], in_channels=spec["in_channels"], image_size=spec["image_size"],
                    num_classes=spec["num_classes"], width=m["width"], batch_norm=m["batch_norm"])
    return nn.Sequential(Normalise(spec["mean"], spec["std"]), net)


def load_classifier(path, device: torch.device) -> nn.Module:
    """Rebuild a saved Sec. 4.4.1 classifier (weights loaded with ``weights_only=True``)."""
    from landscapes.pipeline.io import load_checkpoint

    state = load_checkpoint(path, map_location=device)
    model = _classifier_from_spec(state["spec"]).to(device)
    model.load_state_dict(state["state_dict"])
    return model.eval()


# ---- Reconstruct-then-classify baselines -------------------------------------------------


def build_autoencoder(in_channels: int, width: int = 32) -> nn.Module:
    """A denoising convolutional autoencoder: two stride-2 stages down, two up, sigmoid output.

    Input and output are images in [0, 1]; missing pixels arrive as zeros.
    """
    w = width
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w, w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(2 * w, w, 3, padding=1), nn.ReLU(inplace=True),
        nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w, in_channels, 3, padding=1), nn.Sigmoid(),
    )


def train_autoencoder(
    data_path,
    *,
    ratio: float,
    width: int,
    train_cfg: dict,
    seed: int,
    device: torch.device,
    model_path,
    metrics_path,
    checkpoint_path=None,
    progress: bool = True,
) -> dict:
    """Train the Sec. 4.4.1 denoising autoencoder for one observation ratio (fresh masks every batch)."""
    from pathlib import Path

    from landscapes.core.datasets import load
    from landscapes.pipeline.io import save_checkpoint, save_json
    from landscapes.core.train import Optimiser, fingerprint, train_classifier

    data = load(data_path)
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    spec = {"in_channels": int(x.shape[1]), "width": int(width), "ratio": float(ratio)}
    torch.manual_seed(seed)
    model = build_autoencoder(spec["in_channels"], width).to(device)
    aug = train_cfg["augment"]

    def transform(batch, idx, g):
        clean = augment(batch, g, translate=aug["translate"], flip=aug["flip"], rotate_deg=aug["rotate_deg"])
        mask_seed = int(torch.randint(2**31 - 1, (1,), generator=g))
        mask, _ = observation_mask(len(clean), clean.shape[2], clean.shape[3], ratio, seed=mask_seed)
        return clean * torch.from_numpy(mask).to(clean.device)[:, None].to(clean.dtype), clean

    result = train_classifier(
        model, x.to(device), y.to(device),
        epochs=train_cfg["epochs"], batch_size=train_cfg["batch_size"], optimiser=Optimiser(**train_cfg["optimiser"]),
        seed=seed, transform=transform, checkpoint_path=checkpoint_path, checkpoint_every=train_cfg["checkpoint_every"],
        fingerprint=fingerprint([spec, train_cfg, seed]), objective="reconstruct", progress=progress,
    )
    save_checkpoint(model_path, {"spec": spec, "state_dict": model.state_dict()})
    metrics = {"ratio": float(ratio), "epochs_run": result.epochs_run, "train_mse": result.train_loss,
               "seconds": result.seconds, "device": str(device), "history": result.history}
    save_json(metrics_path, metrics)
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        Path(checkpoint_path).unlink()
    return metrics


def load_autoencoder(path, device: torch.device) -> tuple[float, nn.Module]:
    from landscapes.pipeline.io import load_checkpoint

    state = load_checkpoint(path, map_location=device)
    model = build_autoencoder(state["spec"]["in_channels"], state["spec"]["width"]).to(device)
    model.load_state_dict(state["state_dict"])
    return state["spec"]["ratio"], model.eval()


class Reconstructor(nn.Module):
    """Route each observed image to the autoencoder of the nearest ratio; ratio 1.0 means no reconstruction.

    For the fixed-ratio columns of Table 4.1 this is the thesis's "autoencoder of
    its ratio"; for the Random column (each image's ratio drawn from (0, 1]) it is
    our extension, since the thesis left those cells empty.
    """

    def __init__(self, autoencoders: dict[float, nn.Module]):
        super().__init__()
        self.ratios = sorted(autoencoders)
        self.nets = nn.ModuleList(autoencoders[r] for r in self.ratios)

    def route(self, ratios: torch.Tensor) -> torch.Tensor:
        """Index into ``self.ratios`` (len(self.ratios) = identity) of the nearest candidate per image."""
        candidates = torch.tensor([*self.ratios, 1.0], dtype=torch.float64)
        return (ratios.to(torch.float64)[:, None] - candidates[None, :]).abs().argmin(1)

    def forward(self, x: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        choice = self.route(ratios.cpu()).to(x.device)
        out = x.clone()
        for k, net in enumerate(self.nets):
            rows = torch.nonzero(choice == k).flatten()
            if len(rows):
                out[rows] = net(x[rows])
        return out


def load_reconstructor(paths, device: torch.device) -> Reconstructor:
    return Reconstructor(dict(load_autoencoder(p, device) for p in paths)).to(device)


def evaluate_partial(
    model_path,
    test_path,
    *,
    method: str,
    ratio: str,
    batch_size: int,
    device: torch.device,
    out_path,
    autoencoder_paths=(),
) -> dict:
    """Accuracy of one method on one cached observed test set, written as JSON.

    With ``autoencoder_paths`` the images are reconstructed first (the Recon methods).
    """
    from landscapes.pipeline.io import load_arrays, save_json

    model = load_classifier(model_path, device)
    test = load_arrays(test_path, required=("x", "y", "ratios"))
    x, y, ratios = (torch.from_numpy(test[k]) for k in ("x", "y", "ratios"))
    if autoencoder_paths:
        recon = load_reconstructor(autoencoder_paths, device)
        accuracy, seconds = classify_accuracy(model, x, y, batch_size=batch_size, recon=recon, ratios=ratios)
    else:
        accuracy, seconds = classify_accuracy(model, x, y, batch_size=batch_size)
    record = {
        "method": METHODS.get(method, method),
        "ratio": "Random" if ratio == "random" else ratio,
        "accuracy": accuracy,
        "seconds": seconds,
        "num_images": int(len(y)),
        "device": str(device),
        "extension": bool(autoencoder_paths) and ratio == "random",
    }
    save_json(out_path, record)
    return record


def time_direct_vs_recon(
    direct_model_path, recon_model_path, autoencoder_paths, test_paths: dict[str, str], *,
    batch_size: int, repeats: int, device: torch.device,
) -> pd.DataFrame:
    """Figure 4.2b: seconds to classify a whole test set directly vs reconstruct-then-classify, per ratio.

    Both pipelines run in this one process on one device, alternating, and the
    median over ``repeats`` is kept, so the two columns are comparable.
    """
    from landscapes.pipeline.io import load_arrays

    direct = load_classifier(direct_model_path, device)
    classifier = load_classifier(recon_model_path, device)
    recon = load_reconstructor(autoencoder_paths, device)
    rows = []
    for label, path in test_paths.items():
        test = load_arrays(path, required=("x", "y", "ratios"))
        x, y, ratios = (torch.from_numpy(test[k]) for k in ("x", "y", "ratios"))
        classify_accuracy(direct, x[:batch_size], y[:batch_size], batch_size=batch_size)  # warm-up
        t_direct, t_recon = [], []
        for _ in range(repeats):
            t_direct.append(classify_accuracy(direct, x, y, batch_size=batch_size)[1])
            t_recon.append(classify_accuracy(classifier, x, y, batch_size=batch_size, recon=recon, ratios=ratios)[1])
        rows.append({"ratio": label, "direct_seconds": float(np.median(t_direct)),
                     "recon_seconds": float(np.median(t_recon)), "num_images": int(len(y)), "repeats": repeats,
                     "device": str(device)})
    return pd.DataFrame(rows)


def plot_figure_4_2b(timings: pd.DataFrame, path) -> None:
    """Figure 4.2b: test-set classification time, direct (VGG-16-Ours) vs Recon+VGG-16, per ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = timings["ratio"].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(xs, timings["direct_seconds"], marker="o", label="VGG-16-Ours (direct)")
    ax.plot(xs, timings["recon_seconds"], marker="s", label="Recon+VGG-16")
    ax.set_xlabel("partial observation ratio")
    ax.set_ylabel(f"seconds for {int(timings['num_images'].iloc[0])} test images")
    ax.set_ylim(bottom=0)
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"Figure 4.2b: test time ({timings['device'].iloc[0]})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
