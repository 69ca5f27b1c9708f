"""Snakemake entry point: accuracy and wall time of one method on one observed test set."""

from landscapes.ch4.partial.classification import evaluate_partial
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
evaluate_partial(
    snakemake.input.model,
    snakemake.input.test,
    method=snakemake.wildcards.method,
    ratio=snakemake.wildcards.ratio,
    batch_size=snakemake.params.batch_size,
    device=select_device(snakemake.params.device),
    out_path=snakemake.output.json,
    autoencoder_paths=list(snakemake.input.get("autoencoders", [])),
)
