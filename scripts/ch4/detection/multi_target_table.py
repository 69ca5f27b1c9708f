"""Snakemake entry point: the multi-target test video after fine-tuning (Sec. 4.5.1's second data set)."""

from pathlib import Path

import pandas as pd

from landscapes.ch4.detection.detection import table_multi_target
from landscapes.pipeline.io import write_table
from landscapes.pipeline.runtime import setup_logging

log = setup_logging(snakemake.log[0])
table = table_multi_target(pd.concat([pd.read_csv(p) for p in snakemake.input.evals], ignore_index=True))
write_table(table, Path(snakemake.output.multi_csv).with_suffix(""),
            caption="Multi-target video (fine-tuned detector and classifier): detection, localisation, classification")
log.info("\n%s", table.to_string())
