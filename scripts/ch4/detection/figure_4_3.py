"""Figure 4.3, conventional exposure vs PCE, from a real pce_encode mask."""

from flatscape.ch4.detection.figures import CodingFigure, plot_figure_4_3
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    plot_figure_4_3(snakemake.input.videos, settings(CodingFigure, snakemake.params.cfg), snakemake.output.png)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
