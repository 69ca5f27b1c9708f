"""Figures 3.3-3.6: flatness vs test accuracy, one figure per data set."""

from flatscape.ch3.figures import scatter_figures
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    scatter_figures(snakemake.input.runs, dict(snakemake.output.items()))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
