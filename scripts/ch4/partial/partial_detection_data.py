"""Snakemake entry point: the images of Figure 4.2c (synthetic multi-object scenes, or Pascal VOC 2007)."""

from landscapes.ch4.detection.detection import build_partial_detection_data, ultralytics_offline
from landscapes.pipeline.runtime import setup_logging

log = setup_logging(snakemake.log[0])
ultralytics_offline(snakemake.params.ultralytics, threads=snakemake.threads)
c = snakemake.params.cfg
counts = build_partial_detection_data(snakemake.output.data, source=c["source"], num_train=c["num_train"],
                                      num_val=c["num_val"], image_size=c["image_size"], max_objects=c["max_objects"],
                                      truck_length=c["truck_length"], seed=snakemake.params.seed,
                                      root=snakemake.params.root)
log.info("%s", counts)
