"""Observe the test set at one ratio (Sec. 4.3) and cache it."""

from landscapes.ch4.partial.observe import encode_test_set
from landscapes.ch4.partial.settings import EncodeSettings
from landscapes.pipeline.config import settings
from landscapes.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    encode_test_set(settings(EncodeSettings, snakemake.params.cfg), snakemake.input.data, snakemake.output.npz)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
