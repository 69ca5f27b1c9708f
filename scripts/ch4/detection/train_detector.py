"""Snakemake entry point: train (stage base) or fine-tune (stage finetune) the YOLO detector of Sec. 4.5."""

from landscapes.ch4.detection.detection import train_yolo, ultralytics_offline
from landscapes.pipeline.io import save_json
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
ultralytics_offline(snakemake.params.ultralytics, threads=snakemake.threads)
cfg = snakemake.params.cfg
model = snakemake.input.init[0] if snakemake.input.get("init") else cfg["model"]
metrics = train_yolo(model, f"{snakemake.input.data}/data.yaml", run_dir=snakemake.params.run_dir,
                     out_weights=snakemake.output.weights, epochs=cfg["epochs"], imgsz=cfg["imgsz"], batch=cfg["batch"],
                     optimiser=cfg["optimiser"], extra_args=cfg["ultralytics_args"], seed=cfg["seed"],
                     device=select_device(cfg["device"]))
save_json(snakemake.output.metrics, metrics)
