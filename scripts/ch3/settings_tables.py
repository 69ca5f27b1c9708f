"""Tables 3.4-3.6 (data sets and networks, splits, optimisers) from the configuration that ran."""

from pathlib import Path

from landscapes.core.datasets import load
from landscapes.pipeline.io import write_table
from landscapes.ch3.minima import table_3_4, table_3_5, table_3_6
from landscapes.pipeline.runtime import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
rows, out = snakemake.params.rows, snakemake.output  # noqa: F821
sizes = {}
for name, path in snakemake.input.items():  # noqa: F821
    data = load(path)
    sizes[name] = (len(data.x_train), len(data.x_test))
write_table(table_3_4(rows), Path(out.table_3_4_csv).with_suffix(""),
            caption="Table 3.4: Datasets and deep network architectures used")  # fmt: skip
write_table(table_3_5(rows, sizes), Path(out.table_3_5_csv).with_suffix(""),
            caption="Table 3.5: Train/test splits and samples used for the flatness measure")  # fmt: skip
write_table(table_3_6(rows, snakemake.params.stop_loss), Path(out.table_3_6_csv).with_suffix(""),  # noqa: F821
            caption="Table 3.6: Training algorithms, batch sizes and epoch caps")  # fmt: skip
