"""Snakemake entry point: Tables 4.2-4.4 (and the track-vote variant of 4.4) from the per-fraction records."""

from pathlib import Path

import pandas as pd

from landscapes.ch4.detection.detection import table_4_2, table_4_3, table_4_4
from landscapes.pipeline.io import write_table
from landscapes.pipeline.runtime import setup_logging
from landscapes.ch4.detection.scenes import read_manifest

log = setup_logging(snakemake.log[0])
records = pd.concat([pd.read_csv(p) for p in snakemake.input.evals], ignore_index=True)
classes = read_manifest(snakemake.input.videos)["classes"]
out = snakemake.output
for table, key, caption in (
    (table_4_2(records, classes), "table_4_2", "Table 4.2: detection rate, fraction of coded frames in which the target was detected"),
    (table_4_3(records), "table_4_3", "Table 4.3: DICE and centroid distance, averaged over coded frames with a detection"),
    (table_4_4(records, classes), "table_4_4", "Table 4.4: classification rate, fraction of detected frames correctly classified"),
    (table_4_4(records, classes, column="track_class"), "track_vote",
     "Table 4.4 (extension): classification rate with each track's majority class"),
):
    write_table(table, Path(out[f"{key}_csv"]).with_suffix(""), caption=caption)
    log.info("%s\n%s", caption, table.to_string())
