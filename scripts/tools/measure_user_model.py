"""Flatness of one entry of the config's user_models (the flatscape tool as a job)."""

from flatscape.flatness.cli import run
from flatscape.flatness.settings import FlatnessSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(FlatnessSettings, snakemake.params.cfg)
    run(s, json_path=snakemake.output.json)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
