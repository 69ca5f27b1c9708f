"""Table 2.1 (gradient norm at points columnwise delta/2 from A*), the support-recovery
extension and the bias-reading study, from one pass over the grid (thesis Sec. 2.6.2)."""

from pathlib import Path

from flatscape.ch2.settings import Table21Settings
from flatscape.ch2.studies import table_2_1
from flatscape.ch2.tables import table_2_1_captions
from flatscape.pipeline import config, io
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    settings = config.settings(Table21Settings, snakemake.params.cfg)
    tables = table_2_1(settings)
    for name, caption in table_2_1_captions(settings).items():
        io.write_table(tables[name], Path(snakemake.output[f"{name}_csv"]).with_suffix(""), caption=caption)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
