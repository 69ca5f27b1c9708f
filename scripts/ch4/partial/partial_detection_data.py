"""The images of Figure 4.2c (synthetic multi-object scenes, or Pascal VOC 2007)."""

from flatscape.ch4.partial.detection import DetectionDataSettings, partial_detection_data
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    partial_detection_data(settings(DetectionDataSettings, snakemake.params.cfg), snakemake.output.data,
                           config_dir=snakemake.params.ultralytics, threads=snakemake.threads,
                           staged=snakemake.input.get("staged"))  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
