"""The ranking of flatness and generalization measures on the Sec. 3.5 minima, its population, and the figure."""

from pathlib import Path

from flatscape.ch3.ranking import measures_tables, plot_measures
from flatscape.pipeline.io import write_table
from flatscape.pipeline.runtime import start_job

# output key -> (caption, number format)
TABLES = {
    "ranking": ("Kendall tau of each flatness / generalization measure with test accuracy and the generalization "
                "gap, and Jiang et al.'s granulated tau (beyond the thesis)", "{:.3f}"),
    "runs": ("Every minimum behind the ranking of measures", "{:.6g}"),
}


def main(snakemake):
    start_job(snakemake)
    triples = list(zip(snakemake.input.metrics, snakemake.input.flatness, snakemake.input.measures))
    tables = measures_tables(triples)
    for key, (caption, number) in TABLES.items():
        write_table(tables[key], Path(snakemake.output[f"{key}_csv"]).with_suffix(""), caption=caption, float_format=number)
    plot_measures(tables["runs"], snakemake.output.figure)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
