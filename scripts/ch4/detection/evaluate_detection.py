"""Detect, track and classify at every coded-aperture fraction of one stage (Sec. 4.5.3)."""

from flatscape.ch4.detection.tracking import EvaluationJob, evaluate_detection
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    evaluate_detection(snakemake.input.videos, settings(EvaluationJob, snakemake.params.cfg),
                       detector=snakemake.input.detector, classifier=snakemake.input.classifier,
                       out_csvs=snakemake.output.csvs, config_dir=snakemake.params.ultralytics,
                       threads=snakemake.threads)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
