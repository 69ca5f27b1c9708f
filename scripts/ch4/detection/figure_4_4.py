"""Figure 4.4, a training frame and its 50/25/12.5% PCE versions."""

from flatscape.ch4.detection.figures import CodedPanels, plot_figure_4_4
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    plot_figure_4_4(snakemake.input.videos, settings(CodedPanels, snakemake.params.cfg), snakemake.output.png)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
