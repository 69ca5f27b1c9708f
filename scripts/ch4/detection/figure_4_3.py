"""Snakemake entry point: Figure 4.3, conventional exposure vs PCE, from a real pce_encode mask."""

from landscapes.ch4.detection.detection import derived_seed, plot_figure_4_3
from landscapes.pipeline.runtime import setup_logging
from landscapes.ch4.detection.scenes import read_manifest, read_video, videos_in

setup_logging(snakemake.log[0])
p = snakemake.params
name = videos_in(read_manifest(snakemake.input.videos), "train")[0]
plot_figure_4_3(read_video(snakemake.input.videos, name), snakemake.output.png, fraction=p.fraction,
                frames_per_code=p.frames_per_code, exposure=p.exposure, seed=derived_seed(p.seed, "figure_4_3"))
