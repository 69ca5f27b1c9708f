"""Snakemake entry point: train one small- or large-batch run of Sec. 3.5 to its minimum."""

from landscapes.ch3.minima import train_minimum
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
set_threads(snakemake.threads)  # noqa: F821
cfg = dict(snakemake.params.cfg)  # noqa: F821
train_minimum(
    snakemake.input.data,  # noqa: F821
    network=cfg["network"],
    bias=cfg["bias"],
    train_size=cfg["train_size"],
    batch_size=cfg["batch_size"],
    epochs=cfg["epochs"],
    optimiser=cfg["optimiser"],
    stop_loss=cfg["stop_loss"],
    seed=cfg["seed"],
    device=select_device(cfg["device"]),
    model_path=snakemake.output.model,  # noqa: F821
    metrics_path=snakemake.output.metrics,  # noqa: F821
    checkpoint_path=snakemake.params.checkpoint,  # noqa: F821
    checkpoint_every=cfg["checkpoint_every"],
)
