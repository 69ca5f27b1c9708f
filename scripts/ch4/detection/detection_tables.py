"""Tables 4.2-4.4 (and the track-vote variant of 4.4) from the per-fraction records."""

from flatscape.ch4.detection.tables import write_detection_tables
from flatscape.pipeline.runtime import start_job

TABLES = ("table_4_2", "table_4_3", "table_4_4", "track_vote")


def main(snakemake):
    start_job(snakemake)
    write_detection_tables(snakemake.input.evals, snakemake.input.videos,
                           {key: snakemake.output[f"{key}_csv"] for key in TABLES})


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
