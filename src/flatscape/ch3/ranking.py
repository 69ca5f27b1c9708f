"""Beyond the thesis: the scale-invariant measure against the field's other flatness and
generalization measures, on the same Chapter 3 minima, ranked by how well each predicts
generalization.

``measure_run`` takes every measure of ``flatscape.core.flatness.generalization`` at one
trained minimum (on the row's flatness samples, Table 3.5); ``collect_population`` joins
those with the run's training metrics and its thesis measures (``ch3.measure``:
Riemannian and Euclidean lambda_max, the normalised number); ``ranking_table`` gives, per
data set / network and pooled, each measure's Kendall tau with test accuracy and with the
generalization gap (train minus test accuracy), and Jiang et al.'s granulated tau over the
hyperparameters that vary in the population.

Granulated tau (Jiang et al., "Fantastic Generalization Measures and Where to Find Them",
ICLR 2020, Sec. 4): for each hyperparameter i, the runs are grouped by the values of all
the *other* hyperparameters; within each group only i varies and Kendall's tau of the
measure with the generalization gap is taken; m_i is the mean over the groups (those with
at least two runs and a defined tau) and Psi the mean of the m_i. A population of fewer
than ``MIN_RUNS`` minima gets a row that says so instead of a tau.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau

from flatscape.ch3.measure import flatness_data, measuring_dtype
from flatscape.ch3.tables import DATASET_LABELS, NETWORK_LABELS
from flatscape.ch3.train import load_minimum
from flatscape.core.datasets import load
from flatscape.core.flatness import GENERALIZATION_MEASURES, MEASURE_FUNCTIONS
from flatscape.pipeline.io import load_json, save_figure

log = logging.getLogger(__name__)

MIN_RUNS = 3
THESIS_MEASURES = ("riemannian", "normalised", "euclidean")
"""From each run's ``_flatness.json`` (``ch3.measure.measure_minimum``)."""
HYPERPARAMETERS = ("dataset", "network", "protocol", "batch_size", "lr", "seed")
"""Those of them that take more than one value in a population are the granulated tau's axes."""
MEASURE_LABELS = {
    "riemannian": "Riemannian lambda_max (thesis)",
    "normalised": "normalised bound (thesis Table 3.7)",
    "euclidean": "Euclidean lambda_max",
    "riemannian_trace": "Riemannian trace",
    "relative_flatness": "relative flatness (Petzka)",
    "adaptive_sharpness": "adaptive sharpness, worst case",
    "adaptive_sharpness_avg": "adaptive sharpness, average",
    "pac_bayes_flatness": "PAC-Bayes flatness 1/sigma^2",
    "pac_bayes_mag_flatness": "PAC-Bayes mag. flatness 1/alpha^2",
    "fisher_rao_norm": "Fisher-Rao norm",
}


@dataclass(frozen=True)
class GeneralizationSettings:
    """One run's generalization measures (``ch3.minima.measures`` and the run's row)."""

    measures: tuple[str, ...]
    samples: int
    batch_size: int | None
    dtype: str
    float64_below: float | None  # as ch3.measure.measuring_dtype
    rho: float
    steps: int
    average_rho: float
    average_samples: int
    pac_bayes_bound: float
    pac_bayes_samples: int
    pac_bayes_steps: int
    pac_bayes_criterion: str
    pac_bayes_eps: float
    trace_probes: int
    trace_tol: float
    seed: int
    device: str
    hyperparameters: Mapping[str, object]


def measure_options(s: GeneralizationSettings) -> dict[str, dict]:
    """The keyword arguments of each measure function under settings ``s``."""
    pac = dict(bound=s.pac_bayes_bound, samples=s.pac_bayes_samples, steps=s.pac_bayes_steps,
               criterion=s.pac_bayes_criterion, seed=s.seed)  # fmt: skip
    return {
        "relative_flatness": {},
        "adaptive_sharpness": dict(rho=s.rho, steps=s.steps, seed=s.seed),
        "adaptive_sharpness_avg": dict(rho=s.average_rho, samples=s.average_samples, seed=s.seed),
        "pac_bayes_flatness": pac,
        "pac_bayes_mag_flatness": pac | {"eps": s.pac_bayes_eps},
        "fisher_rao_norm": {},
        "riemannian_trace": dict(probes=s.trace_probes, tol=s.trace_tol, seed=s.seed),
    }


def check_settings(s: GeneralizationSettings) -> None:
    """Unknown measures are refused by name before any model is loaded (the numbers by each measure)."""
    unknown = [m for m in s.measures if m not in GENERALIZATION_MEASURES]
    if unknown:
        raise ValueError(f"ch3.minima.measures.measures: unknown {unknown}; choose from {list(GENERALIZATION_MEASURES)}")


def measure_run(model_path: str | Path, data_path: str | Path, s: GeneralizationSettings, *, device: torch.device) -> dict:
    """Every configured measure at one trained minimum, with the seconds each took and the run's hyperparameters."""
    check_settings(s)
    model = load_minimum(model_path, device)
    x, y = flatness_data(load(data_path), s.samples, device)
    dtype, loss64 = measuring_dtype(model, (x, y), s.dtype, s.float64_below, s.batch_size)
    model, batch = model.to(dtype), (x.to(dtype), y)
    options = measure_options(s)
    out: dict = {"hyperparameters": dict(s.hyperparameters), "flatness_samples": s.samples, "measures": {},
                 "dtype": str(dtype).removeprefix("torch."), "flatness_loss_float64": loss64}  # fmt: skip
    for name in s.measures:
        t0 = time.perf_counter()
        res = MEASURE_FUNCTIONS[name](model, F.cross_entropy, batch, batch_size=s.batch_size, **options[name])
        seconds = time.perf_counter() - t0
        out["measures"][name] = {"value": res.value, "loss": res.loss, "seconds": seconds, **res.info}
        log.info("%s: %.6g (%.1f s)", name, res.value, seconds)
    return out


def collect_population(triples: Sequence[tuple[str | Path, str | Path, str | Path]]) -> pd.DataFrame:
    """One row per run from (training metrics JSON, flatness JSON, measures JSON) triples."""
    rows = []
    for metrics_path, flatness_path, measures_path in triples:
        metrics, flat, meas = load_json(metrics_path), load_json(flatness_path), load_json(measures_path)
        row = {key: meas["hyperparameters"].get(key, metrics.get(key)) for key in HYPERPARAMETERS}
        row |= {"row": Path(metrics_path).parent.name, "batch": Path(metrics_path).stem.split("_seed")[0],
                "train_accuracy": metrics["train_accuracy"], "test_accuracy": metrics["test_accuracy"],
                "train_loss": metrics["train_loss"],
                "generalisation_gap": metrics["train_accuracy"] - metrics["test_accuracy"]}  # fmt: skip
        row |= {m: flat[m] for m in THESIS_MEASURES}
        row |= {m: v["value"] for m, v in meas["measures"].items()}
        rows.append(row)
    if not rows:
        raise ValueError("no runs to collect")
    return pd.DataFrame(rows)


def measure_columns(runs: pd.DataFrame) -> list[str]:
    """The measures present in ``runs``: the thesis's first, then the others in library order."""
    return [m for m in (*THESIS_MEASURES, *GENERALIZATION_MEASURES) if m in runs.columns]


def varying(runs: pd.DataFrame, names: Sequence[str] = HYPERPARAMETERS) -> list[str]:
    """The hyperparameters that take more than one value in ``runs``."""
    return [h for h in names if h in runs.columns and runs[h].astype(str).nunique() > 1]


def _tau(a, b) -> tuple[float, float]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan, math.nan
    tau, p = kendalltau(a, b)
    return float(tau), float(p)


def granulated_tau(runs: pd.DataFrame, measure: str, hyper: Sequence[str], target: str = "generalisation_gap") -> dict[str, float]:
    """m_i for each hyperparameter i of ``hyper`` (Jiang et al. 2020): the mean, over groups of runs that
    share every other hyperparameter, of Kendall's tau between ``measure`` and ``target`` within the group."""
    out = {}
    for h in hyper:
        others = [o for o in hyper if o != h]
        keys = runs[others].astype(str).agg("|".join, axis=1) if others else pd.Series("", index=runs.index)
        taus = []
        for _, g in runs.groupby(keys, sort=False):
            if g[h].astype(str).nunique() > 1:
                tau, _ = _tau(g[measure], g[target])
                if not math.isnan(tau):
                    taus.append(tau)
        out[h] = float(np.mean(taus)) if taus else math.nan
    return out


def _groups(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    groups = [(f"{DATASET_LABELS.get(d, d)} / {NETWORK_LABELS.get(n, n)}", g)
              for (d, n), g in runs.groupby(["dataset", "network"], sort=False)]  # fmt: skip
    if len(groups) > 1:
        groups.append(("pooled", runs))
    return groups


def ranking_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per group (data set / network, and pooled) and measure: Kendall tau with test accuracy and with the
    generalization gap, the granulated tau per varying hyperparameter and their mean Psi.

    A good sharpness-like measure has tau > 0 with the gap and tau < 0 with test accuracy.
    Within a group, rows are sorted by tau with the gap, largest first.
    """
    hyper_all = varying(runs)
    out = []
    for name, g in _groups(runs):
        hyper = varying(g, hyper_all)
        rows = []
        for m in measure_columns(g):
            row: dict = {"group": name, "measure": MEASURE_LABELS.get(m, m), "runs": len(g)}
            if len(g) < MIN_RUNS:
                row |= {"tau_test_accuracy": math.nan, "tau_generalisation_gap": math.nan, "psi": math.nan,
                        "note": f"fewer than {MIN_RUNS} minima ({len(g)}): no tau"}  # fmt: skip
                rows.append(row)
                continue
            finite = np.isfinite(g[m].to_numpy(dtype=float))
            use = g[finite]
            row["tau_test_accuracy"], row["p_test_accuracy"] = _tau(use[m], use["test_accuracy"])
            row["tau_generalisation_gap"], row["p_generalisation_gap"] = _tau(use[m], use["generalisation_gap"])
            granular = granulated_tau(use, m, hyper)
            row |= {f"granulated_{h}": v for h, v in granular.items()}
            defined = [v for v in granular.values() if not math.isnan(v)]
            row["psi"] = float(np.mean(defined)) if defined else math.nan
            notes = []
            if not finite.all():
                notes.append(f"{int((~finite).sum())} infinite value(s) left out")
            if not hyper:
                notes.append("no hyperparameter varies: no granulated tau")
            row["note"] = "; ".join(notes)
            rows.append(row)
        rows.sort(key=lambda r: -r["tau_generalisation_gap"] if not math.isnan(r["tau_generalisation_gap"]) else math.inf)
        out.extend(rows)
    columns = ["group", "measure", "runs", "tau_test_accuracy", "p_test_accuracy", "tau_generalisation_gap",
               "p_generalisation_gap", *[f"granulated_{h}" for h in hyper_all], "psi", "note"]  # fmt: skip
    return pd.DataFrame(out).reindex(columns=columns)


def population_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's hyperparameters, accuracies and measures (the figure's points)."""
    first = ["row", "batch", *HYPERPARAMETERS, "train_loss", "train_accuracy", "test_accuracy", "generalisation_gap"]
    return runs[[c for c in first if c in runs.columns] + measure_columns(runs)].copy()


def measures_tables(triples: Sequence[tuple[str | Path, str | Path, str | Path]]) -> dict[str, pd.DataFrame]:
    """The job behind the ranking table: the table and the population it ranks."""
    runs = collect_population(triples)
    log.info("%d minima; varying hyperparameters: %s", len(runs), varying(runs) or "none")
    return {"ranking": ranking_table(runs), "runs": population_table(runs)}


def plot_measures(runs: pd.DataFrame, path: str | Path) -> Path:
    """One panel per measure: the measure (log scale where all values are positive) against the
    generalization gap, small-batch runs blue and large-batch red, one marker per data set / network."""
    import matplotlib  # lazy: the measuring jobs import this module and draw nothing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy, as above

    measures = measure_columns(runs)
    cols = 4
    rows = math.ceil(len(measures) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    markers = dict(zip(dict.fromkeys(zip(runs["dataset"], runs["network"])), "osD^v<>p*"))
    for ax, m in zip(axes.flat, measures):
        values = runs[m].to_numpy(dtype=float)
        for (key, batch), g in runs.groupby([runs["dataset"] + "/" + runs["network"], "batch"], sort=False):
            ds, net = key.split("/")
            ax.scatter(g["generalisation_gap"] * 100, g[m], s=18, marker=markers[(ds, net)],
                       color="C0" if batch == "small" else "C3", alpha=0.8,
                       label=f"{NETWORK_LABELS.get(net, net)}, {batch}")  # fmt: skip
        finite = values[np.isfinite(values)]
        if len(finite) and (finite > 0).all():
            ax.set_yscale("log")
        ax.set_title(MEASURE_LABELS.get(m, m), fontsize=9)
        ax.set_xlabel("generalization gap (train - test accuracy, %)", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(measures):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)
