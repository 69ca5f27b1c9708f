"""Small- vs large-batch minima and their flatness (thesis Sec. 3.5, Tables 3.4-3.7, Figs 3.2-3.6).

One *run* is a network (``landscapes.core.models``) trained from a seed on a data set with
one batch size until the training cross-entropy is below a threshold at 100% training
accuracy (``train_minimum``), then measured at that minimum (``measure_minimum``):
test accuracy, the raw Riemannian lambda_max, the authors' normalised number
(``flatness.sharpness_bound``), the Euclidean lambda_max, and both again after a
random rescaling T_lambda of the trained network. The tables and figures are pure
functions of the per-run JSON files.

Conventions (the thesis leaves them out; see ``original-code-notes.md``):

- Inputs are images scaled to [0, 1] and standardised per channel by a ``Normalise``
  layer that is part of the saved network (it has no parameters, so it is not a
  block of the metric and ``rescale`` leaves it alone).
- The flatness loss is the *mean* cross-entropy over the first ``flatness_samples``
  training images (the same subset for every batch size and seed, Table 3.5).
- ``normalised`` is eps^2 lambda / (2 + 2L) with the row's ``eps`` (1e-3 for
  MNIST-FC in the authors' scripts) or lambda / (2 + 2L) when ``eps`` is null, L the
  flatness loss; this is the number the thesis's Table 3.7 printed.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from landscapes.pipeline.io import save_figure
from landscapes.core.models import build_model
from landscapes.pipeline.naming import SCATTER_FIGURES  # noqa: F401 (re-exported for the scripts)

log = logging.getLogger(__name__)

BATCH_LABELS = ("small", "large")
MEASURES = ("riemannian", "euclidean", "normalised")

NETWORK_LABELS = {"mnist_fc": "Fully-Connected", "lenet": "LeNet", "alexnet_cifar": "AlexNet",
                  "vgg16_cifar": "VGG16", "f1": "F1", "c1": "C1"}  # fmt: skip
DATASET_LABELS = {"mnist": "MNIST", "kmnist": "KMNIST", "fashion_mnist": "Fashion MNIST",
                  "cifar10": "CIFAR-10", "digits": "digits (sklearn)"}  # fmt: skip

# Table 3.7 of the thesis: (dataset, network) -> {batch size: (acc mean %, acc std %,
# "spectral norm" mean, std)}; the spectral norm is the authors' normalised number.
THESIS_TABLE_3_7 = {
    ("mnist", "mnist_fc"): {200: (98.5, 0.1, 0.00086, 0.0012), 5000: (97.6, 0.1, 32.99, 17.13)},
    ("mnist", "lenet"): {200: (99.2, 0.1, 0.38, 0.55), 5000: (98.9, 0.1, 7.41, 5.64)},
    ("kmnist", "mnist_fc"): {200: (92.9, 0.1, 0.0325, 0.0644), 5000: (89.7, 0.3, 30.45, 7.15)},
    ("kmnist", "lenet"): {200: (95.3, 0.1, 0.356, 0.531), 5000: (93.5, 0.05, 2870.35, 634.21)},
    ("fashion_mnist", "mnist_fc"): {200: (90.1, 0.3, 7.057, 8.83), 5000: (89.3, 0.3, 7466.98, 1494.75)},
    ("fashion_mnist", "lenet"): {200: (90.8, 0.3, 62.17, 67.49), 5000: (89.5, 0.4, 7685.64, 4778.15)},
    ("cifar10", "alexnet_cifar"): {200: (72.76, 0.92, 12.664, 3.589), 2000: (67.36, 0.23, 406.22, 236.49)},
    ("cifar10", "vgg16_cifar"): {200: (75.42, 0.93, 19.58, 14.97), 2000: (65.98, 0.73, 300055.02, 58257.42)},
}


def row_id(dataset: str, network: str) -> str:
    """The name of a Table 3.7 row in file paths: ``<dataset>-<network>``."""
    return f"{dataset}-{network}"


# --------------------------------------------------------------------------- networks


def _network_from_spec(spec: dict) -> nn.Module:
    from landscapes.core.train import Normalise

    net = build_model(spec["network"], in_channels=spec["in_channels"], image_size=spec["image_size"],
                      num_classes=spec["num_classes"], bias=spec["bias"])  # fmt: skip
    return nn.Sequential(Normalise(spec["mean"], spec["std"]), net)


def load_minimum(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """A trained network saved by ``train_minimum`` (loaded with ``weights_only=True``), in eval mode."""
    from landscapes.pipeline.io import load_checkpoint

    state = load_checkpoint(path, map_location=device)
    model = _network_from_spec(state["spec"]).to(device)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def training_subset(data, train_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``train_size`` training images (all when None) as uint8 tensors."""
    n = len(data.x_train) if train_size is None else int(train_size)
    if n > len(data.x_train):
        raise ValueError(f"train_size {n} exceeds the {len(data.x_train)} training images of {data.name}")
    return torch.from_numpy(data.x_train[:n]), torch.from_numpy(data.y_train[:n])


def train_minimum(
    data_path: str | Path,
    *,
    network: str,
    bias: bool,
    train_size: int | None,
    batch_size: int,
    epochs: int,
    optimiser: dict,
    stop_loss: float,
    seed: int,
    device: torch.device,
    model_path: str | Path,
    metrics_path: str | Path,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = True,
) -> dict:
    """Train one run of Sec. 3.5 to the threshold (or the epoch cap) and save it; return its metrics."""
    from landscapes.core.datasets import load
    from landscapes.pipeline.io import save_checkpoint, save_json
    from landscapes.core.train import Optimiser, channel_stats, evaluate, fingerprint, train_classifier

    data = load(data_path)
    x, y = training_subset(data, train_size)
    mean, std = channel_stats(x)
    spec = {"network": network, "bias": bool(bias), "in_channels": int(x.shape[1]), "image_size": int(x.shape[2]),
            "num_classes": len(data.classes), "mean": mean, "std": std}  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _network_from_spec(spec).to(device)
    settings = [spec, len(x), batch_size, epochs, optimiser, stop_loss, seed]
    result = train_classifier(
        model, x.to(device), y.to(device), epochs=epochs, batch_size=batch_size, optimiser=Optimiser(**optimiser),
        seed=seed, checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every, stop_loss=stop_loss,
        fingerprint=fingerprint(settings), progress=progress,
    )  # fmt: skip
    test_loss, test_acc = evaluate(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test))
    save_checkpoint(model_path, {"spec": spec, "state_dict": model.state_dict()})
    metrics = {
        "dataset": data.name, "network": network, "bias": bool(bias), "batch_size": batch_size, "seed": seed,
        "train_size": len(x), "epochs_cap": epochs, "epochs_run": result.epochs_run, "steps": result.steps,
        "stop_loss": stop_loss, "reached_threshold": result.reached_threshold,
        "train_loss": result.train_loss, "train_accuracy": result.train_accuracy,
        "test_loss": test_loss, "test_accuracy": test_acc, "train_seconds": result.seconds,
        "device": str(device), "history": result.history,
    }  # fmt: skip
    save_json(metrics_path, metrics)
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        Path(checkpoint_path).unlink()  # the finished model supersedes it
    log.info("%s/%s batch %d seed %d: %d epochs, train loss %.3g (threshold %s), test accuracy %.4f",
             data.name, network, batch_size, seed, result.epochs_run, result.train_loss,
             "reached" if result.reached_threshold else "NOT reached", test_acc)  # fmt: skip
    return metrics


# --------------------------------------------------------------------------- measuring a minimum


def random_lambdas(num_layers: int, log_range: float, seed: int) -> list[float]:
    """Positive lambdas with product exactly 1: log lambda_i ~ U(-r, r), then centred."""
    gen = torch.Generator().manual_seed(seed)
    logs = (torch.rand(num_layers, generator=gen, dtype=torch.float64) * 2 - 1) * log_range
    logs = logs - logs.mean()
    return [math.exp(v) for v in logs.tolist()]


def flatness_data(data, samples: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``samples`` training images as floats in [0, 1] (Table 3.5's flatness subset)."""
    if samples > len(data.x_train):
        raise ValueError(f"flatness_samples {samples} exceeds the {len(data.x_train)} training images of {data.name}")
    x = torch.from_numpy(data.x_train[:samples]).to(device).float().div_(255.0)
    return x, torch.from_numpy(data.y_train[:samples]).to(device)


def measure_minimum(
    model_path: str | Path,
    data_path: str | Path,
    *,
    samples: int,
    eps: float | None,
    method: str = "lanczos",
    tol: float = 1e-4,
    max_hvp: int = 300,
    batch_size: int | None = None,
    dtype: str = "float32",
    warm_start: Sequence[dict] = (),
    rescale_log_range: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict:
    """Flatness of one trained run: raw and normalised Riemannian lambda_max, Euclidean lambda_max,
    and both lambda_max again at a random rescaling T_lambda of the same network.

    ``warm_start`` holds ``WarmStage`` settings as dicts (``dtype`` by name, e.g. "bfloat16").
    """
    from landscapes.core.datasets import load
    from landscapes.core.flatness import (
        WarmStage,
        euclidean_spectral_norm,
        layers,
        rescale,
        riemannian_spectral_norm,
        sharpness_bound,
    )

    stages = [WarmStage(**{**w, "dtype": getattr(torch, w["dtype"]) if w.get("dtype") else None}) for w in warm_start]

    data = load(data_path)
    # in the measuring dtype before rescaling, so that T_lambda itself is not rounded to float32
    model = load_minimum(model_path, device).to(getattr(torch, dtype))
    batch = flatness_data(data, samples, device)
    kw = dict(method=method, tol=tol, max_hvp=max_hvp, batch_size=batch_size,
              dtype=getattr(torch, dtype), seed=seed, warm_start=stages)  # fmt: skip
    lambdas = random_lambdas(len(layers(model)), rescale_log_range, seed)
    scaled = rescale(model, lambdas)
    out: dict = {"flatness_samples": samples, "eps": eps, "method": method, "tol": tol, "dtype": dtype,
                 "warm_start": len(stages), "lambdas": lambdas}  # fmt: skip
    for key, net in (("", model), ("_rescaled", scaled)):
        for metric, fn in (("riemannian", riemannian_spectral_norm), ("euclidean", euclidean_spectral_norm)):
            t0 = time.perf_counter()
            res = fn(net, F.cross_entropy, batch, **kw)
            out[f"{metric}{key}"] = res.value
            out[f"{metric}{key}_hvp"] = res.num_hvp
            out[f"{metric}{key}_warm_hvp"] = sum(res.warm_hvp)
            out[f"{metric}{key}_converged"] = res.converged
            out[f"{metric}{key}_seconds"] = time.perf_counter() - t0
            out["flatness_loss"] = res.loss if key == "" else out["flatness_loss"]
            log.info("%s%s lambda_max %.6g (%d HVPs, %s, %.1f s)", metric, key, res.value, res.num_hvp,
                     "converged" if res.converged else "NOT converged", out[f"{metric}{key}_seconds"])  # fmt: skip
    out["normalised"] = sharpness_bound(out["riemannian"], out["flatness_loss"], eps)
    out["normalised_rescaled"] = sharpness_bound(out["riemannian_rescaled"], out["flatness_loss"], eps)
    out["riemannian_rescale_change"] = abs(out["riemannian_rescaled"] - out["riemannian"]) / abs(out["riemannian"])
    return out


# --------------------------------------------------------------------------- tables


def collect_runs(pairs: Sequence[tuple[str | Path, str | Path]]) -> pd.DataFrame:
    """One row per run from (training metrics JSON, flatness JSON) pairs."""
    from landscapes.pipeline.io import load_json

    rows = []
    for train_path, flat_path in pairs:
        train = {k: v for k, v in load_json(train_path).items() if k != "history"}
        flat = {k: v for k, v in load_json(flat_path).items() if k != "lambdas"}
        rows.append({**train, **flat, "generalisation_gap": train["train_accuracy"] - train["test_accuracy"]})
    if not rows:
        raise ValueError("no runs to collect")
    df = pd.DataFrame(rows)
    df["batch"] = np.where(df.groupby(["dataset", "network"])["batch_size"].transform("min") == df["batch_size"],
                           "small", "large")  # fmt: skip
    # rows in the order they were configured (first appearance), runs by batch size and seed within
    order = {key: i for i, key in enumerate(dict.fromkeys(zip(df["dataset"], df["network"])))}
    df["_row"] = [order[key] for key in zip(df["dataset"], df["network"])]
    df = df.sort_values(["_row", "batch_size", "seed"], kind="stable").drop(columns="_row")
    return df.reset_index(drop=True)


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 4) -> str:
    if not np.isfinite(mean):
        return ""
    return f"{mean * scale:.{digits}g} ± {std * scale:.{digits}g}"


def table_3_7(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std per data set / network / batch size, the thesis's values beside ours,
    and the large-/small-batch ratio of each mean (comparable across conventions)."""
    out = []
    for (dataset, network), group in runs.groupby(["dataset", "network"], sort=False):
        thesis = THESIS_TABLE_3_7.get((dataset, network), {})
        means = {}
        for batch_size, g in group.groupby("batch_size"):
            t = thesis.get(int(batch_size))
            row = {
                "dataset": DATASET_LABELS.get(dataset, dataset), "network": NETWORK_LABELS.get(network, network),
                "batch_size": int(batch_size), "runs": len(g),
                "reached_threshold": f"{int(g['reached_threshold'].fillna(False).astype(bool).sum())}/{len(g)}",
                "test_accuracy_pct": _pm(g["test_accuracy"].mean(), g["test_accuracy"].std(ddof=0), 100, 4),
                "normalised": _pm(g["normalised"].mean(), g["normalised"].std(ddof=0)),
                "riemannian_lambda_max": _pm(g["riemannian"].mean(), g["riemannian"].std(ddof=0)),
                "euclidean_lambda_max": _pm(g["euclidean"].mean(), g["euclidean"].std(ddof=0)),
                "thesis_test_accuracy_pct": f"{t[0]} ± {t[1]}" if t else "",
                "thesis_spectral_norm": f"{t[2]} ± {t[3]}" if t else "",
            }  # fmt: skip
            means[int(batch_size)] = {m: g[m].mean() for m in MEASURES} | {"thesis": t[2] if t else math.nan}
            out.append(row)
        sizes = sorted(means)
        for row in out[-len(sizes):]:
            for m in (*MEASURES, "thesis"):
                ratio = means[sizes[-1]][m] / means[sizes[0]][m] if len(sizes) > 1 and row["batch_size"] == sizes[-1] else math.nan
                row[f"large_small_ratio_{m}"] = ratio
    return pd.DataFrame(out)


def table_3_7_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's numbers (the points of Figures 3.3-3.6)."""
    cols = ["dataset", "network", "batch_size", "seed", "epochs_run", "reached_threshold", "train_loss",
            "train_accuracy", "test_accuracy", "flatness_loss", "riemannian", "normalised", "euclidean",
            "riemannian_rescaled", "euclidean_rescaled", "riemannian_hvp", "euclidean_hvp", "riemannian_converged",
            "train_seconds", "riemannian_seconds"]  # fmt: skip
    return runs[cols].copy()


def kendall_table(runs: pd.DataFrame, *, rescaled: bool = False) -> pd.DataFrame:
    """Kendall's tau of each measure against test accuracy and the generalisation gap,
    per data set / network and pooled. ``rescaled`` uses the values measured after a
    random T_lambda of every trained network: Riemannian (and its normalised value)
    cannot move, Euclidean can."""
    from scipy.stats import kendalltau

    suffix = "_rescaled" if rescaled else ""
    groups = [(f"{DATASET_LABELS.get(d, d)} / {NETWORK_LABELS.get(n, n)}", g)
              for (d, n), g in runs.groupby(["dataset", "network"], sort=False)]  # fmt: skip
    if len(groups) > 1:
        groups.append(("pooled", runs))
    rows = []
    for name, g in groups:
        for m in MEASURES:
            values = g[f"{m}{suffix}"]
            row = {"group": name, "measure": m + (" (rescaled)" if rescaled else ""), "runs": len(g)}
            for target, column in (("test_accuracy", "test_accuracy"), ("generalisation_gap", "generalisation_gap")):
                tau, p = kendalltau(values, g[column]) if len(g) > 1 else (math.nan, math.nan)
                row[f"tau_{target}"] = float(tau)
                row[f"p_{target}"] = float(p)
            rows.append(row)
    return pd.DataFrame(rows)


def table_3_4(rows: Sequence[dict]) -> pd.DataFrame:
    """Data sets and networks (Table 3.4), from the configured rows and the code's models."""
    from landscapes.core.models import describe_architecture

    def describe(r: dict) -> str:
        size, channels = (32, 3) if r["dataset"] == "cifar10" else ((8, 1) if r["dataset"] == "digits" else (28, 1))
        net = build_model(r["network"], in_channels=channels, image_size=size, bias=r["bias"])
        layers = ", ".join(layer["layer"] for layer in describe_architecture(net))
        return f"{NETWORK_LABELS.get(r['network'], r['network'])}: {layers}" + ("" if r["bias"] else " (no biases)")

    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(DATASET_LABELS.get(r["dataset"], r["dataset"]), []).append(describe(r))
    width = max(len(v) for v in out.values())
    return pd.DataFrame([{"dataset": d, **{f"network_{i + 1}": (v[i] if i < len(v) else "") for i in range(width)}}
                         for d, v in out.items()])  # fmt: skip


def table_3_5(rows: Sequence[dict], sizes: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Train/test sizes and the samples used for the flatness measure (Table 3.5);
    ``sizes`` maps each data set to its (train, test) sizes."""
    out = []
    for r in rows:
        train, test = sizes[r["dataset"]]
        out.append({"dataset": DATASET_LABELS.get(r["dataset"], r["dataset"]),
                    "network": NETWORK_LABELS.get(r["network"], r["network"]),
                    "train_size_available": train, "train_size_used": r["train_size"] or train, "test_size": test,
                    "flatness_samples": r["flatness_samples"]})  # fmt: skip
    return pd.DataFrame(out)


def _describe_optimiser(o: dict) -> str:
    text = f"{o['name'].upper() if o['name'] == 'sgd' else 'Adam'}, lr={o['lr']:g}"
    if o["name"] == "sgd":
        text += f", momentum={o['momentum']:g}"
    if o.get("weight_decay"):
        text += f", weight decay={o['weight_decay']:g}"
    if o.get("step_size"):
        text += f", x{o.get('gamma', 1.0):g} every {o['step_size']} epochs"
    return text


def table_3_6(rows: Sequence[dict], stop_loss: float) -> pd.DataFrame:
    """Optimisers, batch sizes and epoch caps (Table 3.6), from the configuration that ran."""
    out = []
    for r in rows:
        s, big = r["small"], r["large"]
        out.append({"dataset_network": f"{DATASET_LABELS.get(r['dataset'], r['dataset'])} / "
                                       f"{NETWORK_LABELS.get(r['network'], r['network'])}",
                    "small_batch": s["batch_size"], "small_optimiser": _describe_optimiser(s["optimiser"]),
                    "small_epochs_cap": s["epochs"], "large_batch": big["batch_size"],
                    "large_optimiser": _describe_optimiser(big["optimiser"]), "large_epochs_cap": big["epochs"],
                    "stop_when": f"train CE < {stop_loss:g} at 100% train accuracy"})  # fmt: skip
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- figures


def plot_scatter(runs: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Figures 3.3-3.6: flatness (log scale) vs test accuracy, coloured by batch size, one panel per network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    networks = list(dict.fromkeys(runs["network"]))
    fig, axes = plt.subplots(1, len(networks), figsize=(5 * len(networks), 4), squeeze=False)
    for ax, net in zip(axes[0], networks):
        g = runs[runs["network"] == net]
        for (batch_size, sub), colour in zip(g.groupby("batch_size"), ("tab:blue", "tab:red", "tab:green")):
            ax.scatter(100 * sub["test_accuracy"], sub["riemannian"], c=colour, label=f"batch {batch_size}",
                       edgecolors="k", linewidths=0.5)  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("test accuracy (%)")
        ax.set_ylabel("Riemannian spectral norm (raw lambda_max)")
        ax.set_title(f"{DATASET_LABELS.get(g['dataset'].iloc[0], '')} - {NETWORK_LABELS.get(net, net)} ({len(g)} runs)")
        ax.legend()
        ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


@torch.no_grad()
def layer_normalised_curve(
    model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], t_values: Sequence[float], *, seed: int,
    batch_size: int = 2048,
) -> np.ndarray:
    """Mean cross-entropy along W_i + t ||W_i|| / ||V_i|| V_i, V Gaussian (Sec. 3.5.1, Li et al. 2018)."""
    from landscapes.core.flatness import parameter_blocks

    gen = torch.Generator().manual_seed(seed)
    blocks = parameter_blocks(model)
    base = [p.detach().clone() for _, p in blocks]
    directions = []
    for p in base:
        v = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p)
        directions.append(v * (p.norm() / v.norm().clamp_min(1e-30)))
    x, y = data
    losses = []
    was_training = model.training
    model.eval()
    try:
        for t in t_values:
            for (_, p), w, d in zip(blocks, base, directions):
                p.copy_(w + float(t) * d)
            total = sum(F.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size], reduction="sum").item()
                        for i in range(0, len(x), batch_size))  # fmt: skip
            losses.append(total / len(x))
    finally:
        for (_, p), w in zip(blocks, base):
            p.copy_(w)
        model.train(was_training)
    return np.asarray(losses)


def line_plot_curves(
    models: dict[tuple[str, str, int], nn.Module], datasets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    *, directions: int, num_points: int, seed: int,
) -> pd.DataFrame:
    """Figure 3.2's curves for ``models`` keyed by (dataset, network, batch size); the same
    direction seeds for every model so small and large batch see comparable draws."""
    t_values = np.linspace(-1.0, 1.0, num_points)
    rows = []
    for (dataset, network, batch_size), model in models.items():
        for k in range(directions):
            loss = layer_normalised_curve(model, datasets[dataset], t_values, seed=seed * 1000 + k)
            rows += [{"dataset": dataset, "network": network, "batch_size": batch_size, "direction": k, "t": t,
                      "loss": v} for t, v in zip(t_values, loss)]  # fmt: skip
    return pd.DataFrame(rows)


def plot_line_curves(curves: pd.DataFrame, path: str | Path) -> Path:
    """Figure 3.2: one panel per data set / network, small batch blue, large batch red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(zip(curves["dataset"], curves["network"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, (dataset, network) in zip(axes[0], panels):
        g = curves[(curves["dataset"] == dataset) & (curves["network"] == network)]
        sizes = sorted(g["batch_size"].unique())
        for batch_size, colour in zip(sizes, ("tab:blue", "tab:red", "tab:green")):
            for k, (_, line) in enumerate(g[g["batch_size"] == batch_size].groupby("direction")):
                ax.plot(line["t"], line["loss"], color=colour, alpha=0.8, label=f"batch {batch_size}" if k == 0 else None)
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("training loss (mean CE)")
        ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)} - {NETWORK_LABELS.get(network, network)}")
        ax.legend()
        ax.grid(alpha=0.3)
    return save_figure(fig, path)
