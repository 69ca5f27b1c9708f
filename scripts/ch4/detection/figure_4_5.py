"""Figure 4.5, detections and predicted classes on a test frame at 100/50/25/12.5%."""

from flatscape.ch4.detection.figures import CodedPanels, plot_figure_4_5
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    plot_figure_4_5(snakemake.input.videos, snakemake.input.evals, settings(CodedPanels, snakemake.params.cfg),
                    snakemake.output.png)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
