"""Snakemake entry point: detect, track and classify on one coded-aperture fraction (Sec. 4.5.3)."""

from landscapes.ch4.detection.detection import evaluate_detection, ultralytics_offline
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])
set_threads(snakemake.threads)
ultralytics_offline(snakemake.params.ultralytics, threads=snakemake.threads)
cfg = snakemake.params.cfg
evaluate_detection(snakemake.input.videos, split=cfg["split"], fraction=cfg["fraction"],
                   detector=snakemake.input.detector, classifier=snakemake.input.classifier,
                   frames_per_code=cfg["frames_per_code"], exposure=cfg["exposure"], seed=cfg["seed"],
                   imgsz=cfg["imgsz"], conf=cfg["conf"], iou=cfg["iou"], min_iou=cfg["match_iou"],
                   tracker=cfg["tracker"], device=select_device(cfg["device"]), out_csv=snakemake.output.csv)
