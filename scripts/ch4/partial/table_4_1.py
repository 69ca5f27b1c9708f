"""Snakemake entry point: assemble Table 4.1 from the per-(method, ratio) evaluations."""

from pathlib import Path

from landscapes.pipeline.io import load_json, write_table
from landscapes.ch4.partial.classification import table_4_1
from landscapes.pipeline.runtime import setup_logging

log = setup_logging(snakemake.log[0])
records = [load_json(path) for path in snakemake.input.evals]
columns = list(dict.fromkeys(r["ratio"] for r in records))
table = table_4_1(records, columns)
write_table(table, Path(snakemake.output.table_4_1_csv).with_suffix(""),
            caption="Table 4.1: classification accuracy under partial observation")
log.info("\n%s", table.to_string())
