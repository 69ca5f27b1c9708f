"""Snakemake entry point: train (stage base) or fine-tune (stage finetune) the crop ResNet-18 of Sec. 4.5.2."""

from landscapes.ch4.detection.detection import train_crop_classifier
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
cfg = snakemake.params.cfg
train_crop_classifier(snakemake.input.videos, splits=cfg["splits"], crops=cfg["crops"], train=cfg["train"],
                      seed=cfg["seed"], device=select_device(cfg["device"]), model_path=snakemake.output.model,
                      metrics_path=snakemake.output.metrics, weights=cfg["weights"],
                      init=snakemake.input.init[0] if snakemake.input.get("init") else None)
