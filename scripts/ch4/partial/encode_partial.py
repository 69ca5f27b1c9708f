"""Observe the test set at each of Table 4.1's ratios (Sec. 4.3) and cache each."""

from flatscape.ch4.partial.observe import encode_test_sets
from flatscape.ch4.partial.settings import EncodeSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    encode_test_sets(settings(EncodeSettings, snakemake.params.cfg), snakemake.input.data, list(snakemake.output))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
