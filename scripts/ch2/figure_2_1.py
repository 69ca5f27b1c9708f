"""Figure 2.1: loss and mean gradient column norm along a random direction through A* (thesis Sec. 2.6.2)."""

from pathlib import Path

from flatscape.ch2.figures import figure
from flatscape.ch2.settings import FigureSettings
from flatscape.pipeline import config, io
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    profiles = figure(config.settings(FigureSettings, snakemake.params.cfg), snakemake.output.figure)
    io.write_table(profiles, Path(snakemake.output.profiles_csv).with_suffix(""), caption="Figure 2.1 data")


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
