"""A Figure 4.2c detector, on full images (full) or full plus partially observed ones (ours)."""

from flatscape.ch4.partial.detection import DetectorSettings, train_partial_detector
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(DetectorSettings, snakemake.params.cfg)
    train_partial_detector(s, snakemake.input.data, device=select_device(s.device), run_dir=snakemake.params.run_dir,
                           weights=snakemake.output.weights, metrics=snakemake.output.metrics,
                           config_dir=snakemake.params.ultralytics, threads=snakemake.threads)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
