"""Table 3.7 (mean ± std, thesis values beside ours), every run's numbers, and the Kendall tau tables."""

from pathlib import Path

from flatscape.ch3.tables import minima_tables
from flatscape.pipeline.io import write_table
from flatscape.pipeline.runtime import start_job

# output key -> (caption, number format)
TABLES = {
    "table_3_7": ("Table 3.7: Test accuracy and spectral norm of the Riemannian Hessian at minima (mean ± std)", "{:.4g}"),
    "runs": ("Every run behind Table 3.7 and Figures 3.3-3.6", "{:.6g}"),
    "kendall": ("Kendall tau of each flatness measure against test accuracy and generalisation gap (beyond the thesis)", "{:.3f}"),
    "kendall_rescaled": ("The same after a random rescaling T_lambda of every trained network", "{:.3f}"),
}


def main(snakemake):
    start_job(snakemake)
    tables = minima_tables(list(zip(snakemake.input.metrics, snakemake.input.flatness)))
    for key, (caption, number) in TABLES.items():
        write_table(tables[key], Path(snakemake.output[f"{key}_csv"]).with_suffix(""), caption=caption, float_format=number)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
