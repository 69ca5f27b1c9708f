"""Table 4.1 (accuracy per method and observation ratio) and the mAP50 table behind Figure 4.2c."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd

from flatscape.pipeline.io import load_json, write_table

log = logging.getLogger(__name__)

# The methods of Sec. 4.4.1, by the name their files carry.
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

# The detectors of Sec. 4.4.2 (Figure 4.2c), by the name their files carry.
DETECTION_METHODS = {"full": "YOLO (full images)", "ours": "YOLO-Ours (full + partial)"}


def table_4_1(records: list[dict], ratio_columns: list[str]) -> pd.DataFrame:
    """Table 4.1: accuracy per method (rows) and observation ratio (columns), the thesis's rows beside ours."""
    ours = pd.DataFrame(records).pivot(index="method", columns="ratio", values="accuracy")
    ours = ours.reindex(columns=ratio_columns)
    ours.insert(0, "source", "this run")
    thesis = pd.DataFrame(THESIS_TABLE_4_1, index=THESIS_COLUMNS).T
    thesis = thesis.reindex(columns=ratio_columns)
    thesis.insert(0, "source", "thesis (CIFAR-10)")
    table = pd.concat([ours.reset_index(), thesis.reset_index(names="method")], ignore_index=True)
    order = {name: i for i, name in enumerate(THESIS_TABLE_4_1)}
    table["_order"] = table["method"].map(order).fillna(len(order))
    return table.sort_values(["_order", "source"], ascending=[True, False]).drop(columns="_order").reset_index(drop=True)


def write_table_4_1(eval_paths, csv_path) -> pd.DataFrame:
    """Table 4.1 from the per-(method, ratio) evaluations, its columns in the order the evaluations come."""
    records = [load_json(path) for path in eval_paths]
    table = table_4_1(records, list(dict.fromkeys(r["ratio"] for r in records)))
    write_table(table, Path(csv_path).with_suffix(""),
                caption="Table 4.1: classification accuracy under partial observation")  # fmt: skip
    log.info("\n%s", table.to_string())
    return table


def table_4_2c_map50(results: dict[str, list[dict]]) -> pd.DataFrame:
    """mAP50 per detector (rows) and observation ratio (columns): the numbers behind Figure 4.2c."""
    rows = []
    for method, records in results.items():
        row = {"method": DETECTION_METHODS.get(method, method)}
        row.update({f"{r['ratio']:g}": r["map50"] for r in sorted(records, key=lambda r: -r["ratio"])})
        rows.append(row)
    return pd.DataFrame(rows)


def write_table_4_2c_map50(eval_paths, csv_path) -> pd.DataFrame:
    """The Figure 4.2c table from the detectors' evaluations (one JSON per detector)."""
    results = {r["method"]: r["records"] for r in map(load_json, eval_paths)}
    table = table_4_2c_map50(results)
    write_table(table, Path(csv_path).with_suffix(""),
                caption="Figure 4.2c (data): mAP50 of each detector on test images observed at each ratio")  # fmt: skip
    log.info("\n%s", table.to_string())
    return table
