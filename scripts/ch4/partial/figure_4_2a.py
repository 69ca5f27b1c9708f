"""Snakemake entry point: Figure 4.2a from Table 4.1."""

import pandas as pd

from landscapes.ch4.partial.classification import plot_figure_4_2a
from landscapes.pipeline.runtime import setup_logging

setup_logging(snakemake.log[0])
plot_figure_4_2a(pd.read_csv(snakemake.input.table), snakemake.output.png)
