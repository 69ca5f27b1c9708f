"""Snakemake entry point: Figure 4.2b from its timing table."""

import pandas as pd

from landscapes.ch4.partial.classification import plot_figure_4_2b
from landscapes.pipeline.runtime import setup_logging

setup_logging(snakemake.log[0])
plot_figure_4_2b(pd.read_csv(snakemake.input.timings, dtype={"ratio": str}), snakemake.output.png)
