"""Train (stage base) or fine-tune (stage finetune) the YOLO detector of Sec. 4.5."""

from flatscape.ch4.detection.yolo import DetectorJob, train_detector
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    train_detector(settings(DetectorJob, snakemake.params.cfg), data_dir=snakemake.input.data,
                   run_dir=snakemake.params.run_dir, weights=snakemake.output.weights,
                   metrics=snakemake.output.metrics, config_dir=snakemake.params.ultralytics,
                   threads=snakemake.threads)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
