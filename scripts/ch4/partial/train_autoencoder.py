"""Snakemake entry point: train the denoising autoencoder of one observation ratio (Sec. 4.4.1)."""

from landscapes.ch4.partial.classification import train_autoencoder
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
cfg = snakemake.params.cfg
train_autoencoder(
    snakemake.input.data,
    ratio=cfg["ratio"],
    width=cfg["width"],
    train_cfg=cfg["train"],
    seed=cfg["seed"],
    device=select_device(cfg["device"]),
    model_path=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    checkpoint_path=snakemake.params.checkpoint,
)
