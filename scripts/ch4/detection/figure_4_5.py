"""Snakemake entry point: Figure 4.5, detections and predicted classes on a test frame at 100/50/25/12.5%."""

import pandas as pd

from landscapes.ch4.detection.detection import plot_figure_4_5
from landscapes.pipeline.runtime import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
records = {f: pd.read_csv(path) for f, path in zip(p.fractions, snakemake.input.evals)}
videos = sorted(set(records[max(records)]["video"]))
name = next((v for v in videos if "frontier" in v), videos[0])
plot_figure_4_5(snakemake.input.videos, records, snakemake.output.png, video=name, frames_per_code=p.frames_per_code,
                exposure=p.exposure, seed=p.seed)
