"""Flatness along the training path (beyond the thesis): large/small ratios and Kendall tau at each threshold."""

from pathlib import Path

from flatscape.ch3.tables import path_tables
from flatscape.pipeline.io import write_table
from flatscape.pipeline.runtime import start_job

# output key -> (caption, number format)
TABLES = {
    "table_3_path": (
        "Flatness along the training path: at the first epoch with training CE below each threshold, and at "
        "each run's endpoint (its protocol's: the CE stop or the last epoch of a fixed budget), the "
        "large/small-batch ratio of each measure and its Kendall tau against test accuracy",
        "{:.4g}",
    ),
    "runs": ("Every measured snapshot and endpoint behind the training-path table and figure", "{:.6g}"),
}


def main(snakemake):
    start_job(snakemake)
    tables = path_tables(snakemake.input.flatness, list(zip(snakemake.input.metrics, snakemake.input.minima)))
    for key, (caption, number) in TABLES.items():
        write_table(tables[key], Path(snakemake.output[f"{key}_csv"]).with_suffix(""), caption=caption, float_format=number)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
