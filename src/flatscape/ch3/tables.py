"""Tables 3.4-3.7 and the Kendall tau tables of Sec. 3.5: pure functions of the configured
rows and of the per-run JSON files (``ch3.train`` and ``ch3.measure`` write them)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from flatscape.ch3.settings import SettingsTables
from flatscape.core.datasets import load
from flatscape.core.models import build_model, describe_architecture
from flatscape.pipeline.config import minima_row_stop
from flatscape.pipeline.io import load_json

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



def collect_runs(pairs: Sequence[tuple[str | Path, str | Path]]) -> pd.DataFrame:
    """One row per run from (training metrics JSON, flatness JSON) pairs.

    A run's Table 3.7 row is the folder its files live in (``<dataset>-<network>[-<arm>]``),
    so two rows of one data set and network (another protocol, say) stay apart."""
    rows = []
    for train_path, flat_path in pairs:
        train = {k: v for k, v in load_json(train_path).items() if k not in ("history", "snapshots")}
        flat = {k: v for k, v in load_json(flat_path).items() if k != "lambdas"}
        rows.append({"row": _row_of(train_path, train), "protocol": "ce_stop", **train, **flat,
                     "generalisation_gap": train["train_accuracy"] - train["test_accuracy"]})  # fmt: skip
    if not rows:
        raise ValueError("no runs to collect")
    df = add_conventions(pd.DataFrame(rows))
    df["batch"] = np.where(df.groupby("row")["batch_size"].transform("min") == df["batch_size"], "small", "large")
    # rows in the order they were configured (first appearance), runs by batch size and seed within
    order = {key: i for i, key in enumerate(dict.fromkeys(df["row"]))}
    df["_row"] = df["row"].map(order)
    df = df.sort_values(["_row", "batch_size", "seed"], kind="stable").drop(columns="_row")
    return df.reset_index(drop=True)


def _row_of(path: str | Path, record: Mapping) -> str:
    """The row of a run's file: the folder it lives in when that is the workflow's
    ``<dataset>-<network>[-<arm>]``, else the plain ``<dataset>-<network>``."""
    base, folder = f"{record['dataset']}-{record['network']}", Path(path).parent.name
    return folder if folder == base or folder.startswith(base + "-") else base


# The authors' MNIST-FC script printed eps^2 lambda / (2 + 2L) with this eps (original-code-notes.md).
AUTHORS_EPS = 1e-3

# Every convention a flatness number has been printed in, beside the raw value (Table 3.7's columns):
# column -> what it is. L is the mean cross-entropy on the flatness samples.
CONVENTIONS = {
    "riemannian": "raw Riemannian lambda_max",
    "lambda_over_2_2L": "lambda / (2 + 2L) (the authors' LeNet, KMNIST, Fashion-MNIST and CIFAR-10 scripts)",
    "eps2_lambda_over_2_2L": "eps^2 lambda / (2 + 2L), eps = 1e-3 (the authors' MNIST-FC script)",
    "euclidean": "Euclidean lambda_max",
}


def add_conventions(runs: pd.DataFrame) -> pd.DataFrame:
    """Columns of every printed convention of the Riemannian value, computed from the raw
    lambda_max and the flatness loss L (no measurement repeated); the rescaled copies too,
    where measured, so their invariance under T_lambda can be read off."""
    out = runs.copy()
    for suffix in ("", "_rescaled"):
        if f"riemannian{suffix}" not in out or "flatness_loss" not in out:
            continue
        lam, loss = out[f"riemannian{suffix}"], out["flatness_loss"]
        out[f"lambda_over_2_2L{suffix}"] = lam / (2 + 2 * loss)
        out[f"eps2_lambda_over_2_2L{suffix}"] = AUTHORS_EPS**2 * lam / (2 + 2 * loss)
    return out


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 4) -> str:
    if not np.isfinite(mean):
        return ""
    return f"{mean * scale:.{digits}g} ± {std * scale:.{digits}g}"


def _epochs(g: pd.DataFrame) -> str:
    lo, hi = int(g["epochs_run"].min()), int(g["epochs_run"].max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def table_3_7(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std per row (data set / network / arm) and batch size, the thesis's values beside
    ours, every printed convention beside the raw value with the training CE and epoch it was
    measured at, and the large-/small-batch ratio of each mean (comparable across conventions)."""
    out = []
    ratio_of = (*MEASURES, "lambda_over_2_2L", "eps2_lambda_over_2_2L")
    for _, group in runs.groupby("row", sort=False):
        dataset, network = group["dataset"].iloc[0], group["network"].iloc[0]
        thesis = THESIS_TABLE_3_7.get((dataset, network), {})
        means = {}
        for batch_size, g in group.groupby("batch_size"):
            t = thesis.get(int(batch_size))
            row = {
                "dataset": DATASET_LABELS.get(dataset, dataset), "network": NETWORK_LABELS.get(network, network),
                "row": g["row"].iloc[0], "protocol": g["protocol"].iloc[0],
                "batch_size": int(batch_size), "runs": len(g),
                "reached_threshold": (f"{int(g['reached_threshold'].fillna(False).astype(bool).sum())}/{len(g)}"
                                      if g["protocol"].iloc[0] == "ce_stop" else "n/a (fixed epochs)"),
                "epochs": _epochs(g),
                "train_ce": _pm(g["train_loss"].mean(), g["train_loss"].std(ddof=0), digits=3),
                "test_accuracy_pct": _pm(g["test_accuracy"].mean(), g["test_accuracy"].std(ddof=0), 100, 4),
                "normalised": _pm(g["normalised"].mean(), g["normalised"].std(ddof=0)),
                "riemannian_lambda_max": _pm(g["riemannian"].mean(), g["riemannian"].std(ddof=0)),
                "lambda_over_2_2L": _pm(g["lambda_over_2_2L"].mean(), g["lambda_over_2_2L"].std(ddof=0)),
                "eps2_lambda_over_2_2L": _pm(g["eps2_lambda_over_2_2L"].mean(), g["eps2_lambda_over_2_2L"].std(ddof=0)),
                "euclidean_lambda_max": _pm(g["euclidean"].mean(), g["euclidean"].std(ddof=0)),
                "thesis_test_accuracy_pct": f"{t[0]} ± {t[1]}" if t else "",
                "thesis_spectral_norm": f"{t[2]} ± {t[3]}" if t else "",
            }  # fmt: skip
            means[int(batch_size)] = {m: g[m].mean() for m in ratio_of} | {"thesis": t[2] if t else math.nan}
            out.append(row)
        sizes = sorted(means)
        for row in out[-len(sizes):]:
            for m in (*ratio_of, "thesis"):
                ratio = means[sizes[-1]][m] / means[sizes[0]][m] if len(sizes) > 1 and row["batch_size"] == sizes[-1] else math.nan
                row[f"large_small_ratio_{m}"] = ratio
    return pd.DataFrame(out)


def table_3_7_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's numbers (the points of Figures 3.3-3.6)."""
    cols = ["dataset", "network", "row", "protocol", "batch_size", "seed", "epochs_run", "reached_threshold",
            "train_loss", "train_accuracy", "test_accuracy", "flatness_loss", "riemannian", "normalised",
            "lambda_over_2_2L", "eps2_lambda_over_2_2L", "euclidean", "riemannian_rescaled", "lambda_over_2_2L_rescaled",
            "eps2_lambda_over_2_2L_rescaled", "euclidean_rescaled", "riemannian_hvp", "euclidean_hvp", "riemannian_converged",
            "train_seconds", "riemannian_seconds"]  # fmt: skip
    return runs[cols].copy()


def kendall_table(runs: pd.DataFrame, *, rescaled: bool = False) -> pd.DataFrame:
    """Kendall's tau of each measure against test accuracy and the generalisation gap,
    per data set / network and pooled. ``rescaled`` uses the values measured after a
    random T_lambda of every trained network: Riemannian (and its normalised value)
    cannot move, Euclidean can."""
    suffix = "_rescaled" if rescaled else ""
    groups = [(_row_label(g), g) for _, g in runs.groupby("row", sort=False)]
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


def _row_label(g: pd.DataFrame) -> str:
    """A row's name in tables: "MNIST / Fully-Connected", with its folder name when that carries an arm."""
    d, n, row = g["dataset"].iloc[0], g["network"].iloc[0], g["row"].iloc[0]
    label = f"{DATASET_LABELS.get(d, d)} / {NETWORK_LABELS.get(n, n)}"
    return label if row == f"{d}-{n}" else f"{label} ({row.removeprefix(f'{d}-{n}-')})"


def table_3_4(rows: Sequence[Mapping]) -> pd.DataFrame:
    """Data sets and networks (Table 3.4), from the configured rows and the code's models."""
    def describe(r: Mapping) -> str:
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


def table_3_5(rows: Sequence[Mapping], sizes: dict[str, tuple[int, int]]) -> pd.DataFrame:
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


def _describe_optimiser(o: Mapping) -> str:
    text = f"{o['name'].upper() if o['name'] == 'sgd' else 'Adam'}, lr={o['lr']:g}"
    if o["name"] == "sgd":
        text += f", momentum={o['momentum']:g}"
    if o.get("weight_decay"):
        text += f", weight decay={o['weight_decay']:g}"
    if o.get("step_size"):
        text += f", x{o.get('gamma', 1.0):g} every {o['step_size']} epochs"
    return text


def table_3_6(rows: Sequence[Mapping], stop_loss: float | None) -> pd.DataFrame:
    """Optimisers, batch sizes and epoch caps (Table 3.6), from the configuration that ran; a
    fixed-epoch row (``protocol: fixed_epochs``) trains exactly its epochs, with no CE stop."""
    out = []
    for r in rows:
        s, big = r["small"], r["large"]
        stop = minima_row_stop(r, stop_loss)
        label = f"{DATASET_LABELS.get(r['dataset'], r['dataset'])} / {NETWORK_LABELS.get(r['network'], r['network'])}"
        out.append({"dataset_network": label + (f" ({r['arm']})" if r.get("arm") else ""),
                    "small_batch": s["batch_size"], "small_optimiser": _describe_optimiser(s["optimiser"]),
                    "small_epochs_cap": s["epochs"], "large_batch": big["batch_size"],
                    "large_optimiser": _describe_optimiser(big["optimiser"]), "large_epochs_cap": big["epochs"],
                    "stop_when": (f"train CE < {stop:g} at 100% train accuracy" if stop is not None
                                  else "after exactly the epochs above (fixed budget, no CE stop)")})  # fmt: skip
    return pd.DataFrame(out)


def settings_tables(s: SettingsTables, dataset_paths: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """The job behind Tables 3.4-3.6: the configured rows, with each data set's sizes read from its file."""
    sizes = {}
    for name, path in dataset_paths.items():
        data = load(path)
        sizes[name] = (len(data.x_train), len(data.x_test))
    return {"table_3_4": table_3_4(s.rows), "table_3_5": table_3_5(s.rows, sizes), "table_3_6": table_3_6(s.rows, s.stop_loss)}


def minima_tables(pairs: Sequence[tuple[str | Path, str | Path]]) -> dict[str, pd.DataFrame]:
    """The job behind Table 3.7, its per-run table and the Kendall tau tables, from every run's two JSON files."""
    runs = collect_runs(pairs)
    log.info("%d runs; threshold reached in %d", len(runs), int(runs["reached_threshold"].fillna(False).sum()))
    log.info("largest relative change of the Riemannian value under T_lambda: %.3g", runs["riemannian_rescale_change"].max())
    return {"table_3_7": table_3_7(runs), "runs": table_3_7_runs(runs), "kendall": kendall_table(runs),
            "kendall_rescaled": kendall_table(runs, rescaled=True)}  # fmt: skip


# ---- Beyond the thesis: flatness along the training path (ch3.snapshots, measure.measure_snapshot)

PATH_COLUMNS = ["dataset", "network", "row", "protocol", "batch_size", "seed", "point", "threshold", "reached", "epoch",
                "train_loss", "train_accuracy", "test_accuracy", "flatness_loss", "riemannian", "lambda_over_2_2L",
                "eps2_lambda_over_2_2L", "euclidean", "normalised", "riemannian_hvp", "euclidean_hvp",
                "riemannian_converged", "riemannian_seconds", "euclidean_seconds"]  # fmt: skip


def collect_path_runs(paths: Sequence[str | Path], endpoints: Sequence[tuple[str | Path, str | Path]] = ()) -> pd.DataFrame:
    """One row per (run, threshold) from the snapshot measurements (unreached ones have no
    measures), plus, from (metrics, flatness) pairs of the runs' minima, one ``point = "end"``
    row per run: where its protocol ended it (the CE stop, or the last epoch of a fixed budget)."""
    if not paths:
        raise ValueError("no snapshot measurements to collect")
    snaps = []
    for p in paths:  # <row>/<batch>_seed<k>_path/flatness_ce<t>.json
        record = load_json(p)
        snaps.append({"protocol": "ce_stop", **record, "row": _row_of(Path(p).parent, record)})
    df = pd.DataFrame(snaps)
    df["point"] = [f"CE < {t:.0e}" for t in df["threshold"]]
    if len(endpoints):
        end = collect_runs(endpoints).rename(columns={"epochs_run": "epoch"})
        end["point"], end["threshold"], end["reached"] = "end", math.nan, True
        df = pd.concat([df, end], ignore_index=True)
    df = add_conventions(df).reindex(columns=PATH_COLUMNS)
    df["reached"] = df["reached"].astype(bool)
    order = {key: i for i, key in enumerate(dict.fromkeys(df["row"]))}
    df["_row"] = df["row"].map(order)
    # thresholds from the top of the path down, each run's endpoint last
    df["_depth"] = df["threshold"].fillna(0.0)
    df = df.sort_values(["_row", "_depth", "batch_size", "seed"], ascending=[True, False, True, True], kind="stable")
    return df.drop(columns=["_row", "_depth"]).reset_index(drop=True)


def path_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per row (data set / network / arm) and threshold: how many runs got below it, the mean
    training CE, epoch and Riemannian lambda_max per batch size, each measure's large/small ratio
    of means, and its Kendall tau against test accuracy over the runs that got there (both batch
    sizes); last, the same at each protocol's endpoint (the runs' minima)."""
    out = []
    for _, group in runs.groupby("row", sort=False):
        dataset, network = group["dataset"].iloc[0], group["network"].iloc[0]
        small_size, large_size = group["batch_size"].min(), group["batch_size"].max()
        for point, g in group.groupby("point", sort=False):
            reached = g[g["reached"]]
            parts = {label: (g[g["batch_size"] == size], reached[reached["batch_size"] == size])
                     for label, size in (("small", small_size), ("large", large_size))}  # fmt: skip
            row = {"dataset": DATASET_LABELS.get(dataset, dataset), "network": NETWORK_LABELS.get(network, network),
                   "row": g["row"].iloc[0], "protocol": g["protocol"].iloc[0], "point": point,
                   "threshold": float(g["threshold"].iloc[0])}  # fmt: skip
            for label, (every, got) in parts.items():
                row[f"reached_{label}"] = f"{len(got)}/{len(every)}"
            for label, (_, got) in parts.items():
                row[f"train_ce_{label}"] = got["train_loss"].mean() if len(got) else math.nan
                row[f"epoch_{label}"] = got["epoch"].mean() if len(got) else math.nan
                row[f"riemannian_{label}"] = got["riemannian"].mean() if len(got) else math.nan
            small, large = parts["small"][1], parts["large"][1]
            for m in PATH_RATIOS:
                row[f"large_small_ratio_{m}"] = large[m].mean() / small[m].mean() if len(small) and len(large) else math.nan
            for m in MEASURES:
                tau = kendalltau(reached[m], reached["test_accuracy"])[0] if len(reached) > 1 else math.nan
                row[f"tau_test_accuracy_{m}"] = float(tau)
            out.append(row)
    return pd.DataFrame(out)


PATH_RATIOS = (*MEASURES, "lambda_over_2_2L")


def path_tables(paths: Sequence[str | Path], endpoints: Sequence[tuple[str | Path, str | Path]] = ()) -> dict[str, pd.DataFrame]:
    """The job behind the training-path table: the table and every measured snapshot (and endpoint)."""
    runs = collect_path_runs(paths, endpoints)
    log.info("%d snapshot measurements, %d of runs that got below their threshold", len(runs), int(runs["reached"].sum()))
    return {"table_3_path": path_table(runs), "runs": runs}
