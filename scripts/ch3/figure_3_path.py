"""Riemannian lambda_max against training CE along every run's training path (beyond the thesis)."""

from flatscape.ch3.figures import path_figure
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    path_figure(snakemake.input.path_runs, snakemake.output.figure_3_path)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
