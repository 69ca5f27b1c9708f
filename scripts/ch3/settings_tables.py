"""Tables 3.4-3.6 (data sets and networks, splits, optimisers) from the configuration that ran."""

from pathlib import Path

from flatscape.ch3.settings import SettingsTables
from flatscape.ch3.tables import settings_tables
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import write_table
from flatscape.pipeline.runtime import start_job

CAPTIONS = {
    "table_3_4": "Table 3.4: Datasets and deep network architectures used",
    "table_3_5": "Table 3.5: Train/test splits and samples used for the flatness measure",
    "table_3_6": "Table 3.6: Training algorithms, batch sizes and epoch caps",
}


def main(snakemake):
    start_job(snakemake)
    s = settings(SettingsTables, snakemake.params.cfg)
    for name, table in settings_tables(s, dict(snakemake.input.items())).items():
        write_table(table, Path(snakemake.output[f"{name}_csv"]).with_suffix(""), caption=CAPTIONS[name])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
