"""Table 4.1 from the per-(method, ratio) evaluations."""

from flatscape.ch4.partial.tables import write_table_4_1
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    write_table_4_1(snakemake.input.evals, snakemake.output.table_4_1_csv)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
