"""Snakemake entry point: the detector's images and labels (full frames plus PCE frames, Sec. 4.5.3)."""

from landscapes.ch4.detection.detection import build_detector_dataset
from landscapes.pipeline.runtime import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
build_detector_dataset(snakemake.input.videos, snakemake.output.data, splits=p.splits, train_fractions=p.train_fractions,
                       frames_per_code=p.frames_per_code, exposure=p.exposure, raw_stride=p.raw_stride,
                       val_fraction=p.val_fraction, seed=p.seed)
