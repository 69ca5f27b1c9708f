"""Figure 4.2c (mAP50 against observation ratio) and the table behind it."""

from flatscape.ch4.partial.figures import figure_4_2c
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    figure_4_2c(snakemake.input.evals, snakemake.output.map50_csv, snakemake.output.png)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
