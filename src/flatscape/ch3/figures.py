"""Figures of Chapter 3: 3.1 (the power method's convergence), 3.2 (layer-normalised loss
curves) and 3.3-3.6 (flatness against test accuracy)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # jobs have no display; before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from flatscape.ch3.tables import DATASET_LABELS, NETWORK_LABELS  # noqa: E402
from flatscape.pipeline.io import atomic_path, save_figure  # noqa: E402
from flatscape.pipeline.naming import SCATTER_FIGURES  # noqa: E402


def _pad_runs(curves: pd.DataFrame, column: str) -> np.ndarray:
    """(runs, max_hvp) array of ``column``, each run held at its last value after it stopped."""
    runs = [g[column].to_numpy() for _, g in curves.groupby("run", sort=True)]
    length = max(len(r) for r in runs)
    return np.stack([np.concatenate([r, np.full(length - len(r), r[-1])]) for r in runs])


def plot_power_convergence(curves: pd.DataFrame, path: str | Path) -> Path:
    """Figure 3.1: (left) estimate / lambda_max, mean +- std over runs; (right) relative error, median and range."""
    fig, (ax_est, ax_err) = plt.subplots(1, 2, figsize=(10, 4))
    styles = {"power": ("C0", "Riemannian power method (Alg. 1)"), "lanczos": ("C3", "Lanczos")}
    num_runs = curves["run"].nunique()
    for method, (color, label) in styles.items():
        sub = curves[curves["method"] == method]
        if sub.empty:
            continue
        est = _pad_runs(sub, "estimate") / _pad_runs(sub, "estimate")[:, -1:]
        err = np.maximum(_pad_runs(sub, "relative_error"), 1e-17)
        x = np.arange(1, est.shape[1] + 1)
        mean, std = est.mean(axis=0), est.std(axis=0)
        ax_est.plot(x, mean, color=color, label=label)
        ax_est.fill_between(x, mean - std, mean + std, color=color, alpha=0.25)
        ax_err.semilogy(x, np.median(err, axis=0), color=color, label=label)
        ax_err.fill_between(x, err.min(axis=0), err.max(axis=0), color=color, alpha=0.25)
    ax_est.set(xlabel="Hessian-vector products", ylabel="estimate / final value", title="Spectral norm estimate")
    ax_err.set(xlabel="Hessian-vector products", ylabel="relative error", title="Error vs tight Lanczos value")
    for ax, where in ((ax_est, "lower right"), (ax_err, "lower left")):
        ax.grid(alpha=0.3)
        ax.legend(loc=where)
        ax.set_xscale("log")
    fig.suptitle(f"F1 on synthetic data, {num_runs} runs (mean and spread)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)
    plt.close(fig)
    return path


def plot_scatter(runs: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Figures 3.3-3.6: flatness (log scale) vs test accuracy, coloured by batch size, one panel per network."""
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


def plot_line_curves(curves: pd.DataFrame, path: str | Path) -> Path:
    """Figure 3.2: one panel per data set / network, small batch blue, large batch red."""
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


def scatter_figures(runs_csv: str | Path, paths: dict[str, str]) -> None:
    """The job behind Figures 3.3-3.6: one figure per data set of the per-run table, at ``paths[figure name]``."""
    runs = pd.read_csv(runs_csv)
    for dataset, group in runs.groupby("dataset", sort=False):
        title = f"{DATASET_LABELS.get(dataset, dataset)}: flatness vs generalisation"
        plot_scatter(group, paths[SCATTER_FIGURES[dataset]], title=title)


ENDPOINT_MARKERS = {"ce_stop": "*", "fixed_epochs": "s"}
BATCH_COLOURS = ("tab:blue", "tab:cyan", "tab:green", "tab:red", "tab:orange", "tab:purple")


def plot_path(path_runs: pd.DataFrame, path: str | Path) -> Path:
    """Riemannian lambda_max against training CE (log-log), one line per run from its first
    snapshot to its endpoint, one colour per batch size and one panel per data set / network,
    every row (protocol) of that pair on the same axes. The endpoint is where the run's
    protocol ended it: a star for the CE stop, a square for the last epoch of a fixed budget."""
    panels = list(dict.fromkeys(zip(path_runs["dataset"], path_runs["network"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (dataset, network) in zip(axes[0], panels):
        pair = path_runs[(path_runs["dataset"] == dataset) & (path_runs["network"] == network) & path_runs["reached"]]
        colours = dict(zip(sorted(set(pair["batch_size"])), BATCH_COLOURS))
        labelled = set()
        for (row, batch_size, seed), run in pair.groupby(["row", "batch_size", "seed"], sort=False):
            line = run[run["point"] != "end"].sort_values("threshold", ascending=False)
            end = run[run["point"] == "end"]
            protocol = run["protocol"].iloc[0]
            x = np.concatenate([line["train_loss"].to_numpy(), end["train_loss"].to_numpy()])
            y = np.concatenate([line["riemannian"].to_numpy(), end["riemannian"].to_numpy()])
            style = "-" if protocol == "ce_stop" else "--"
            key = (batch_size, protocol)
            label = f"batch {batch_size}, {protocol.replace('_', ' ')}" if key not in labelled else None
            labelled.add(key)
            ax.plot(x, y, "o" + style, color=colours[batch_size], alpha=0.7, markersize=3, label=label)
            ax.plot(end["train_loss"], end["riemannian"], ENDPOINT_MARKERS.get(protocol, "*"), color=colours[batch_size],
                    markersize=10 if protocol == "ce_stop" else 7, markeredgecolor="k")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()  # training runs left to right
        ax.set_xlabel("training cross-entropy (full training set)")
        ax.set_ylabel("Riemannian spectral norm (raw lambda_max)")
        ax.set_title(f"{DATASET_LABELS.get(dataset, dataset)} - {NETWORK_LABELS.get(network, network)}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Flatness along the training path (star: CE-stop endpoint; square: fixed-epoch endpoint)")
    return save_figure(fig, path)


def path_figure(path_runs_csv: str | Path, path: str | Path) -> Path:
    """The job behind the training-path figure: every measured snapshot and each run's endpoint."""
    return plot_path(pd.read_csv(path_runs_csv), path)
