"""Snakemake entry point: Figure 4.2c (mAP50 against observation ratio) and the table behind it."""

from pathlib import Path

from landscapes.ch4.detection.detection import plot_figure_4_2c, table_partial_map
from landscapes.pipeline.io import load_json, write_table
from landscapes.pipeline.runtime import setup_logging

log = setup_logging(snakemake.log[0])
results = {r["method"]: r["records"] for r in map(load_json, snakemake.input.evals)}
table = table_partial_map(results)
write_table(table, Path(snakemake.output.map50_csv).with_suffix(""),
            caption="Figure 4.2c (data): mAP50 of each detector on test images observed at each ratio")
plot_figure_4_2c(table, snakemake.output.png)
log.info("\n%s", table.to_string())
