"""The multi-target test video after fine-tuning (Sec. 4.5.1's second data set)."""

from flatscape.ch4.detection.tables import write_multi_target_table
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    write_multi_target_table(snakemake.input.evals, snakemake.output.multi_csv)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
