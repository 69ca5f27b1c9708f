"""Snakemake entry point: Figure 4.4, a training frame and its 50/25/12.5% PCE versions."""

from landscapes.ch4.detection.detection import plot_figure_4_4
from landscapes.pipeline.runtime import setup_logging
from landscapes.ch4.detection.scenes import read_manifest, read_video, videos_in

setup_logging(snakemake.log[0])
p = snakemake.params
train = videos_in(read_manifest(snakemake.input.videos), "train")
name = next((n for n in train if "frontier" in n), train[0])  # the thesis shows a Frontier
plot_figure_4_4(read_video(snakemake.input.videos, name), snakemake.output.png, fractions=p.fractions,
                frames_per_code=p.frames_per_code, exposure=p.exposure, seed=p.seed)
