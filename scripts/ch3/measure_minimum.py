"""Flatness of one trained run of Sec. 3.5 (raw, normalised, Euclidean, and after a random T_lambda)."""

from flatscape.ch3.measure import measure_minimum
from flatscape.ch3.settings import MeasureSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import save_json
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(MeasureSettings, snakemake.params.cfg)
    result = measure_minimum(snakemake.input.model, snakemake.input.data, s, device=select_device(s.device))
    save_json(snakemake.output.json, result)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
