"""Snakemake entry point: a Figure 4.2c detector, on full images (full) or full plus partial ones (ours)."""

from landscapes.ch4.detection.detection import partial_trainer, train_yolo, ultralytics_offline
from landscapes.pipeline.io import save_json
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
ultralytics_offline(snakemake.params.ultralytics, threads=snakemake.threads)
cfg = snakemake.params.cfg
trainer = partial_trainer(cfg["train_ratios"], cfg["seed"]) if cfg["train_ratios"] else None
metrics = train_yolo(cfg["model"], f"{snakemake.input.data}/data.yaml", run_dir=snakemake.params.run_dir,
                     out_weights=snakemake.output.weights, epochs=cfg["epochs"], imgsz=cfg["imgsz"], batch=cfg["batch"],
                     optimiser=cfg["optimiser"], extra_args=cfg["ultralytics_args"], seed=cfg["seed"],
                     device=select_device(cfg["device"]), trainer=trainer)
save_json(snakemake.output.metrics, {**metrics, "train_ratios": cfg["train_ratios"]})
