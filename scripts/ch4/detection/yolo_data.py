"""The detector's images and labels: full frames plus PCE frames (Sec. 4.5.3)."""

from flatscape.ch4.detection.data import DetectorData, build_detector_dataset
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    build_detector_dataset(snakemake.input.videos, snakemake.output.data, settings(DetectorData, snakemake.params.cfg))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
