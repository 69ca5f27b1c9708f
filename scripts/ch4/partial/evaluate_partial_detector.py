"""Snakemake entry point: mAP50 of one Figure 4.2c detector at every test observation ratio."""

from landscapes.ch4.detection.detection import partial_map50, ultralytics_offline
from landscapes.pipeline.io import save_json
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
ultralytics_offline(snakemake.params.ultralytics, threads=snakemake.threads)
cfg = snakemake.params.cfg
records = partial_map50(snakemake.input.weights, f"{snakemake.input.data}/data.yaml", ratios=cfg["test_ratios"],
                        imgsz=cfg["imgsz"], batch=cfg["batch"], seed=cfg["seed"], device=select_device(cfg["device"]),
                        run_dir=snakemake.params.run_dir)
save_json(snakemake.output.json, {"method": snakemake.wildcards.method, "records": records})
