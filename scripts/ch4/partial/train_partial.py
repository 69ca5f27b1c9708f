"""Snakemake entry point: train VGG-16 or VGG-16-Ours (Sec. 4.4.1)."""

from landscapes.ch4.partial.classification import train_partial_classifier
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

log = setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
cfg = snakemake.params.cfg
train_partial_classifier(
    snakemake.input.data,
    model_cfg=cfg["model"],
    train_cfg=cfg["train"],
    train_ratios=cfg["train_ratios"],
    seed=cfg["seed"],
    device=select_device(cfg["device"]),
    model_path=snakemake.output.model,
    metrics_path=snakemake.output.metrics,
    checkpoint_path=snakemake.params.checkpoint,
)
