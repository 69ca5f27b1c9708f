"""Figure 4.2a from Table 4.1."""

from flatscape.ch4.partial.figures import figure_4_2a
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    figure_4_2a(snakemake.input.table, snakemake.output.png)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
