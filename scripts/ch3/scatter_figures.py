"""Figures 3.3-3.6: flatness vs test accuracy, one figure per data set."""

import pandas as pd

from landscapes.ch3.minima import DATASET_LABELS, SCATTER_FIGURES, plot_scatter
from landscapes.pipeline.runtime import setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
runs = pd.read_csv(snakemake.input.runs)  # noqa: F821
for dataset, group in runs.groupby("dataset", sort=False):
    name = SCATTER_FIGURES[dataset]
    plot_scatter(group, snakemake.output[name], title=f"{DATASET_LABELS.get(dataset, dataset)}: flatness vs generalisation")  # noqa: F821
