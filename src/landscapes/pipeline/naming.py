"""Labels that name results in file names and tables.

Kept free of torch and numpy: the Snakefile imports them, and every Snakemake
invocation (a dry run, each cluster job) pays for what the Snakefile imports.
"""

from __future__ import annotations


def ratio_label(ratio: float | str) -> str:
    """Label of an observation ratio: "1.0", "0.9", "0.125", and "Random" for the random mode."""
    if ratio == "random":
        return "Random"
    return "1.0" if float(ratio) == 1.0 else f"{float(ratio):.3g}"


def fraction_label(fraction: float) -> str:
    """File-name label of a coded-aperture fraction: 0.0625, 0.125, ..., 1."""
    return f"{float(fraction):g}"


# Figures 3.3-3.6 are one per data set; scikit-learn's digits (the offline preset)
# stand in for MNIST.
SCATTER_FIGURES = {"mnist": "figure_3_3", "digits": "figure_3_3", "kmnist": "figure_3_4",
                   "fashion_mnist": "figure_3_5", "cifar10": "figure_3_6"}  # fmt: skip
