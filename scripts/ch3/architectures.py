"""Table 3.1 (F1 and C1) written from the code's own model definitions."""

from pathlib import Path

from flatscape.ch3.invariance import table_3_1
from flatscape.pipeline.io import write_table
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    write_table(table_3_1(), Path(snakemake.output.table_3_1_csv).with_suffix(""),
                caption="Table 3.1: Network architectures for simulations")  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
