"""Figure 4.2: (a) accuracy and (c) detection mAP50 against the observation ratio, (b) test time."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # jobs have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from flatscape.ch4.partial.tables import write_table_4_2c_map50  # noqa: E402
from flatscape.pipeline.io import save_figure  # noqa: E402


def plot_against_ratio(table: pd.DataFrame, columns: list[str], path, *, ylabel: str, title: str) -> None:
    """One line per row of ``table`` (labelled by its ``method``) over the ratio ``columns``,
    ratio decreasing to the right as in the thesis's Figure 4.2; written atomically."""
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


def figure_4_2a(table_csv, path) -> None:
    """Figure 4.2a from Table 4.1: accuracy against observation ratio, one line per method of this run."""
    table = pd.read_csv(table_csv)
    numeric = [c for c in table.columns if c not in ("method", "source", "Random")]
    plot_against_ratio(table[table["source"] == "this run"], numeric, path, ylabel="test accuracy",
                       title="Figure 4.2a: accuracy under partial observation")  # fmt: skip


def figure_4_2b(timings_csv, path) -> None:
    """Figure 4.2b: test-set classification time, direct (VGG-16-Ours) vs Recon+VGG-16, per ratio."""
    timings = pd.read_csv(timings_csv, dtype={"ratio": str})
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
    save_figure(fig, path)


def figure_4_2c(eval_paths, table_csv, path) -> None:
    """Figure 4.2c and the table behind it: mAP50 against the test observation ratio, one line per detector."""
    table = write_table_4_2c_map50(eval_paths, table_csv)
    plot_against_ratio(table, [c for c in table.columns if c != "method"], path, ylabel="mAP50",
                       title="Figure 4.2c: detection under partial observation")  # fmt: skip
