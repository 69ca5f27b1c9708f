"""Table 3.7's verdict, row by row: does a training protocol account for the thesis's large/small
ratio at the scale it was measured? (Beyond the thesis; issue 29.)

The inputs are kept result folders (``docs/results/<name>/``: the workflow's ``table_3_7_runs`` and
``table_3_path_runs`` tables of one preset) with the preset file that made each, which says every
row's training-set size, batch sizes and protocol. One verdict row per (network, training-set size,
protocol, source): the thesis's ratio, ours (mean Riemannian lambda_max of the large-batch
minima over that of the small-batch ones), each batch size's endpoint CE and optimiser steps, the
deepest CE level that every run of both batch sizes crossed with the ratio there, and a one-line
verdict: whether the protocol gives the thesis's number within ``WITHIN`` (3x), or by what factor
it misses.

The data-size sweep (``config/table37_datasize.yaml``) gives the same numbers against N:
:func:`datasize_table` and :func:`plot_datasize`.

    python -m flatscape.ch3.verdict docs/results/table37_verdict_sources.yaml docs/results
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from flatscape.ch3.tables import NETWORK_LABELS, THESIS_TABLE_3_7
from flatscape.pipeline.config import minima_row_id, minima_row_stop
from flatscape.pipeline.io import save_figure

# A protocol "accounts for" the thesis's ratio when ours is within this factor of it, either way.
WITHIN = 3.0


@dataclass(frozen=True)
class Source:
    """One kept result folder and the preset that made it."""

    name: str  # the folder's name under docs/results, shown in the table
    folder: Path
    config: Path
    machine: str
    note: str = ""


def thesis_ratio(dataset: str, network: str) -> float:
    """The large/small ratio of the thesis's printed Table 3.7 numbers (its 'spectral norm' column)."""
    rows = THESIS_TABLE_3_7.get((dataset, network))
    if not rows:
        return math.nan
    small, large = min(rows), max(rows)
    return rows[large][2] / rows[small][2]


def load_sources(path: str | Path) -> list[Source]:
    """The sources file: a YAML list of {folder, config, machine, note}; paths relative to the file."""
    path = Path(path)
    root = path.resolve().parent
    out = []
    for entry in yaml.safe_load(path.read_text()):
        folder = root / entry["folder"]
        out.append(Source(name=folder.name, folder=folder, config=root / entry["config"], machine=entry["machine"],
                          note=entry.get("note", "")))  # fmt: skip
    return out


def _preset_rows(config: Path) -> dict[str, dict]:
    """Row id -> the row's settings (train size, batch sizes and epochs, protocol) as the preset states them,
    merged over config.yaml's defaults the way the workflow merges presets (a row lists every key itself)."""
    cfg = yaml.safe_load(config.read_text())
    minima = cfg["ch3"]["minima"]
    rows = {}
    for r in minima["rows"]:
        rows[minima_row_id(r)] = {"train_size": r["train_size"], "protocol": r.get("protocol", "ce_stop"),
                                  "stop_loss": minima_row_stop(r, minima.get("stop_loss")),
                                  "small": r["small"]["batch_size"], "large": r["large"]["batch_size"]}  # fmt: skip
    return rows


def load_points(source: Source) -> pd.DataFrame:
    """Every measured point of a source: each run's endpoint (``point == "end"``) and its snapshots
    (``point`` = the CE level), with the run's row, training-set size, batch and optimiser steps."""
    rows = _preset_rows(source.config)
    runs = pd.read_csv(source.folder / "table_3_7_runs.csv") if (source.folder / "table_3_7_runs.csv").exists() else None
    path = pd.read_csv(source.folder / "table_3_path_runs.csv")
    if "row" not in path:  # tables kept before rows had arms: one row per data set / network
        path["row"] = path["dataset"] + "-" + path["network"]
    if "point" in path:
        snaps = path[path["point"] != "end"].copy()
        ends = path[path["point"] == "end"].copy()
    else:  # an older path table without the endpoints: those are the per-run table's minima
        snaps, ends = path.copy(), None
    snaps["point"] = "level"
    if ends is None or ends.empty:
        if runs is None:
            raise FileNotFoundError(f"{source.folder}: no endpoints (table_3_7_runs.csv, or 'end' rows of the path table)")
        if "row" not in runs:
            runs["row"] = runs["dataset"] + "-" + runs["network"]
        ends = runs.rename(columns={"epochs_run": "epoch"}).assign(threshold=math.nan, reached=True)
    ends["point"] = "end"
    cols = ["dataset", "network", "row", "batch_size", "seed", "point", "threshold", "reached", "epoch", "train_loss",
            "riemannian"]  # fmt: skip
    df = pd.concat([snaps.reindex(columns=cols), ends.reindex(columns=cols)], ignore_index=True)
    unknown = sorted(set(df["row"]) - set(rows))
    if unknown:
        raise ValueError(f"{source.folder}: rows {unknown} are not in {source.config}")
    df["source"] = source.name
    df["train_size"] = df["row"].map(lambda r: rows[r]["train_size"])
    df["protocol"] = df["row"].map(lambda r: rows[r]["protocol"])
    df["batch"] = [("small" if b == rows[r]["small"] else "large" if b == rows[r]["large"] else "other")
                   for r, b in zip(df["row"], df["batch_size"])]  # fmt: skip
    df["steps"] = df["epoch"] * np.ceil(df["train_size"] / df["batch_size"])
    df["reached"] = df["reached"].astype(bool)
    return df


def _deepest_common(points: pd.DataFrame) -> tuple[float, float]:
    """(level, large/small ratio there): the smallest CE level that every run of both batch sizes crossed
    and had measured; (nan, nan) when there is none."""
    levels = points[points["point"] == "level"]
    best = (math.nan, math.nan)
    for level, g in sorted(levels.groupby("threshold"), key=lambda kv: kv[0], reverse=True):
        parts = {b: g[g["batch"] == b] for b in ("small", "large")}
        seeds = {b: points[(points["point"] == "end") & (points["batch"] == b)]["seed"].nunique() for b in parts}
        if all(len(p) and p["reached"].all() and p["riemannian"].notna().all() and p["seed"].nunique() >= seeds[b]
               for b, p in parts.items()):  # fmt: skip
            best = (float(level), parts["large"]["riemannian"].mean() / parts["small"]["riemannian"].mean())
    return best


def verdict_line(ratio: float, thesis: float) -> str:
    """Whether ``ratio`` reproduces ``thesis`` within WITHIN, or by what factor it misses."""
    if not (np.isfinite(ratio) and np.isfinite(thesis)):
        return "no ratio: a batch size is not measured"
    factor = ratio / thesis
    if 1 / WITHIN <= factor <= WITHIN:
        return f"accounts for the thesis's ratio (x{factor:.2g} of it)"
    if factor < 1:
        return f"misses: {_times(1 / factor)} below the thesis's ratio"
    return f"misses: {_times(factor)} above the thesis's ratio"


def _times(factor: float) -> str:
    return f"{factor:,.0f}x" if factor >= 100 else f"{factor:.3g}x"


def verdict_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (network, training-set size, protocol, source): the thesis's ratio and ours at the
    endpoints, each batch size's endpoint CE and steps, the deepest common CE level and the ratio there."""
    out = []
    keys = ["network", "train_size", "protocol", "row", "source"]
    for (network, n, protocol, row, source), g in points.groupby(keys, sort=False):
        ends = g[g["point"] == "end"]
        thesis = thesis_ratio(g["dataset"].iloc[0], network)
        rec = {"network": NETWORK_LABELS.get(network, network), "train_size": int(n), "protocol": protocol, "row": row,
               "source": source, "thesis_ratio": thesis}  # fmt: skip
        lam = {}
        for b in ("small", "large"):
            e = ends[ends["batch"] == b]
            rec[f"batch_{b}"] = int(e["batch_size"].iloc[0]) if len(e) else math.nan
            rec[f"seeds_{b}"] = e["seed"].nunique()
            rec[f"train_ce_{b}"] = e["train_loss"].mean() if len(e) else math.nan
            rec[f"steps_{b}"] = e["steps"].mean() if len(e) else math.nan
            lam[b] = e["riemannian"].mean() if len(e) else math.nan
            rec[f"riemannian_{b}"] = lam[b]
        rec["ratio"] = lam["large"] / lam["small"]
        rec["deepest_common_level"], rec["ratio_at_deepest_common_level"] = _deepest_common(g)
        rec["verdict"] = verdict_line(rec["ratio"], thesis)
        out.append(rec)
    return pd.DataFrame(out)


def datasize_table(points: pd.DataFrame) -> pd.DataFrame:
    """The fixed-epoch rows of one network against the training-set size N (the verdict rows of the sweep)."""
    table = verdict_table(points)
    return table.sort_values("train_size", kind="stable").reset_index(drop=True)


def plot_datasize(table: pd.DataFrame, path: str | Path, *, thesis_lines: dict[str, float]) -> Path:
    """Against N (log): (a) the large/small ratio with the thesis's ratios as lines, (b) both lambdas,
    (c) both endpoint CEs, (d) the optimiser steps each batch size took."""
    # the plot is optional: the verdict tables need no matplotlib
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after use("Agg"): no display here

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    n = table["train_size"]
    ax = axes[0]
    ax.plot(n, table["ratio"], "ko-", label="ours: fixed 200 epochs, endpoints")
    if table["ratio_at_deepest_common_level"].notna().any():
        ax.plot(n, table["ratio_at_deepest_common_level"], "k^--", alpha=0.6, label="ours at the deepest common CE level")
    for (label, value), colour in zip(thesis_lines.items(), ("tab:red", "tab:purple", "tab:green")):
        ax.axhline(value, color=colour, ls=":", label=f"thesis {label}: {value:,.4g}")
    ax.set(ylabel="large / small (Riemannian lambda_max)", title="(a) the ratio")
    for b, colour in (("small", "tab:blue"), ("large", "tab:red")):
        axes[1].plot(n, table[f"riemannian_{b}"], "o-", color=colour, label=f"batch {int(table[f'batch_{b}'].iloc[0])}")
        axes[2].plot(n, table[f"train_ce_{b}"], "o-", color=colour, label=f"batch {int(table[f'batch_{b}'].iloc[0])}")
        axes[3].plot(n, table[f"steps_{b}"], "o-", color=colour, label=f"batch {int(table[f'batch_{b}'].iloc[0])}")
    axes[1].set(ylabel="Riemannian lambda_max at the endpoint", title="(b) flatness")
    axes[2].set(ylabel="training CE at the endpoint (float64)", title="(c) endpoint CE")
    axes[3].set(ylabel="optimiser steps in 200 epochs", title="(d) steps")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training images N (flatness on the same N)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("MNIST-FC, the authors' fixed 200 epochs at batch 200 / 5000, against the training-set size")
    return save_figure(fig, path)


def _markdown(table: pd.DataFrame, sources: list[Source]) -> str:
    show = table.copy()
    for col in show.columns:
        if pd.api.types.is_float_dtype(show[col]):
            show[col] = show[col].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    lines = ["Table 3.7's verdict, row by row: the large/small ratio of the Riemannian lambda_max at each protocol's "
             f"endpoints against the thesis's; a protocol accounts for the thesis's ratio when ours is within {WITHIN:g}x "
             "of it. `deepest_common_level`: the smallest CE level every run of both batch sizes crossed (and was "
             "measured at), with the ratio there.", "", show.to_markdown(index=False), "", "Sources:", ""]  # fmt: skip
    for s in sources:
        lines.append(f"- `{s.name}`: {s.machine}; preset `{s.config.name}`" + (f"; {s.note}" if s.note else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Table 3.7's row-by-row verdict from kept result folders")
    parser.add_argument("sources", type=Path, help="YAML list of {folder, config, machine, note}")
    parser.add_argument("out", type=Path, help="folder for table37_verdict.{csv,md} and the data-size table and figure")
    parser.add_argument("--datasize", default="table37_datasize", help="the source holding the data-size sweep")
    args = parser.parse_args(argv)
    sources = load_sources(args.sources)
    points = pd.concat([load_points(s) for s in sources], ignore_index=True)
    table = verdict_table(points)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "table37_verdict.csv", index=False)
    (args.out / "table37_verdict.md").write_text(_markdown(table, sources))
    sweep = points[(points["source"] == args.datasize) & (points["network"] == "mnist_fc")]
    if len(sweep):
        size = datasize_table(sweep)
        folder = args.out / args.datasize
        size.to_csv(folder / "table_datasize.csv", index=False)
        (folder / "table_datasize.md").write_text(_markdown(size, [s for s in sources if s.name == args.datasize]))
        lines = {"MNIST-FC": thesis_ratio("mnist", "mnist_fc"), "LeNet": thesis_ratio("mnist", "lenet")}
        plot_datasize(size, folder / "figure_datasize.png", thesis_lines=lines)
    print(table[["network", "train_size", "protocol", "source", "ratio", "thesis_ratio", "verdict"]].to_string(index=False))


if __name__ == "__main__":
    main()
