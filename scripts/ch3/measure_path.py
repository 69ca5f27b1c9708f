"""Flatness, test accuracy and training CE of one run's snapshot on its training path (beyond the thesis)."""

from flatscape.ch3.measure import measure_snapshot
from flatscape.ch3.settings import PathMeasureSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import save_json
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(PathMeasureSettings, snakemake.params.cfg)
    result = measure_snapshot(snakemake.input.metrics, snakemake.params.snapshots, snakemake.input.data, s,
                              device=select_device(s.device))  # fmt: skip
    save_json(snakemake.output.json, result)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
