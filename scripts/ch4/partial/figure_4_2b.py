"""Figure 4.2b from its timing table."""

from flatscape.ch4.partial.figures import figure_4_2b
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    figure_4_2b(snakemake.input.timings, snakemake.output.png)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
