"""Snakemake entry point: Figure 4.2b's timings, direct vs reconstruct-then-classify, in one process."""

from pathlib import Path

from landscapes.pipeline.io import write_table
from landscapes.ch4.partial.classification import time_direct_vs_recon
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
timings = time_direct_vs_recon(
    snakemake.input.direct,
    snakemake.input.classifier,
    list(snakemake.input.autoencoders),
    snakemake.params.tests,
    batch_size=snakemake.params.batch_size,
    repeats=snakemake.params.repeats,
    device=select_device(snakemake.params.device),
)
write_table(timings, Path(snakemake.output.timings_csv).with_suffix(""),
            caption="Figure 4.2b data: seconds to classify the test set, direct vs reconstruct-then-classify")
log.info("\n%s", timings.to_string())
