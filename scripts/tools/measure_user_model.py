"""Flatness of one entry of the config's user_models (the landscapes-flatness tool as a job)."""

from landscapes.flatness.cli import run
from landscapes.flatness.settings import FlatnessSettings
from landscapes.pipeline.config import settings
from landscapes.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(FlatnessSettings, snakemake.params.cfg)
    run(s, json_path=snakemake.output.json)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
