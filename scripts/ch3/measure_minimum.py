"""Snakemake entry point: flatness of one trained run (raw, normalised, Euclidean, rescaled)."""

from landscapes.pipeline.io import save_json
from landscapes.ch3.minima import measure_minimum
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
set_threads(snakemake.threads)  # noqa: F821
cfg = dict(snakemake.params.cfg)  # noqa: F821
device = select_device(cfg.pop("device"))
save_json(snakemake.output.json, measure_minimum(snakemake.input.model, snakemake.input.data, device=device, **cfg))  # noqa: F821
