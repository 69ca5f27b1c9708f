"""Table 2.2: gradient descent from columnwise distance (h/5) delta (thesis Sec. 2.6.2)."""

from pathlib import Path

from flatscape.ch2.descent import table_2_2
from flatscape.ch2.settings import Table22Settings
from flatscape.pipeline import config, io
from flatscape.pipeline.runtime import start_job

CAPTION = "Table 2.2: share of the initial columnwise distance to A* covered by gradient descent, thesis values beside"


def main(snakemake):
    start_job(snakemake)
    table = table_2_2(config.settings(Table22Settings, snakemake.params.cfg))
    io.write_table(table, Path(snakemake.output.table_csv).with_suffix(""), caption=CAPTION)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
