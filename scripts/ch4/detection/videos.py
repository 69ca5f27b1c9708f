"""Snakemake entry point: the Sec. 4.5 videos, synthetic or a user's folder (docs/video_format.md)."""

from landscapes.pipeline.runtime import setup_logging
from landscapes.ch4.detection.scenes import generate_dataset, import_folder

log = setup_logging(snakemake.log[0])
cfg = snakemake.params.scenes
if cfg["source"] == "folder":
    manifest = import_folder(cfg["path"], snakemake.output.videos)
else:
    manifest = generate_dataset(snakemake.output.videos, height=cfg["height"], width=cfg["width"], frames=cfg["frames"],
                                multi_target_frames=cfg["multi_target_frames"], videos_per_class=cfg["videos_per_class"],
                                truck_length=cfg["truck_length"], seed=snakemake.params.seed)
log.info("videos: %s", manifest["videos"])
