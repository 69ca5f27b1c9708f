"""Labels that name results in file names and tables.

Kept free of torch and numpy: the Snakefile imports them, and every Snakemake
invocation (a dry run, each cluster job) pays for what the Snakefile imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_RANDOM_NAMES = ("random", "Random")


@dataclass(frozen=True, order=True)
class Ratio:
    """An observation ratio of Chapter 4: a fraction of pixels kept, or Random.

    ``value`` is the fraction in (0, 1], or None for the Random mode (each image draws
    its own ratio: the "Random" column of Table 4.1). One object carries every spelling:
    ``label`` for tables ("1.0", "0.9", "0.125", "Random"), ``wildcard`` for file names
    ("1.0", "random"), ``encoder_arg`` for :mod:`flatscape.core.encoders` (a float or
    "random"); :meth:`parse` reads any of them back.
    """

    value: float | None

    def __post_init__(self):
        if self.value is not None and not 0.0 < float(self.value) <= 1.0:
            raise ValueError(f"an observation ratio must lie in (0, 1] or be Random, got {self.value!r}")

    @classmethod
    def parse(cls, text: float | int | str | Ratio) -> Ratio:
        if isinstance(text, Ratio):
            return text
        if isinstance(text, str) and text in _RANDOM_NAMES:
            return cls(None)
        try:
            return cls(float(text))
        except (TypeError, ValueError):
            raise ValueError(f"not an observation ratio: {text!r} (a number in (0, 1] or 'random')") from None

    @classmethod
    def random(cls) -> Ratio:
        return cls(None)

    @property
    def is_random(self) -> bool:
        return self.value is None

    @property
    def label(self) -> str:
        if self.value is None:
            return "Random"
        return "1.0" if float(self.value) == 1.0 else f"{float(self.value):.3g}"

    @property
    def wildcard(self) -> str:
        return "random" if self.value is None else self.label

    @property
    def encoder_arg(self) -> float | str:
        return "random" if self.value is None else float(self.value)

    def __str__(self) -> str:
        return self.label


def ratio_label(ratio: float | str | Ratio) -> str:
    """Label of an observation ratio: "1.0", "0.9", "0.125", and "Random" for the random mode."""
    return Ratio.parse(ratio).label


def fraction_label(fraction: float) -> str:
    """File-name label of a coded-aperture fraction: 0.0625, 0.125, ..., 1."""
    return f"{float(fraction):g}"


# Figures 3.3-3.6 are one per data set; scikit-learn's digits (the offline preset)
# stand in for MNIST.
SCATTER_FIGURES = {"mnist": "figure_3_3", "digits": "figure_3_3", "kmnist": "figure_3_4",
                   "fashion_mnist": "figure_3_5", "cifar10": "figure_3_6"}  # fmt: skip


# A fixed-epoch run (protocol fixed_epochs) keeps saving snapshots below any stop level,
# down to this CE (the full-set CE is taken in float64, so levels below float32's resolution
# of about 1e-8 are real; a 200-epoch run on 50,000 MNIST images goes below 1e-10).
DEEPEST_SNAPSHOT_LEVEL = 1e-10


def snapshot_levels(stop_loss: float | None) -> list[float]:
    """The CE levels a run saves snapshots at: 1e-1, 1e-2, ... down to the smallest power of
    ten not below ``stop_loss``; for a fixed-epoch run (``None``) down to DEEPEST_SNAPSHOT_LEVEL."""
    deepest = math.floor(-math.log10(DEEPEST_SNAPSHOT_LEVEL if stop_loss is None else stop_loss) + 1e-9)
    return [float(f"1e-{k}") for k in range(1, deepest + 1)]


# The tables the claims summary (flatscape.pipeline.claims) reads; named here, beside the
# other output names, so the workflow can list them without importing pandas or torch.
CLAIM_TABLES = ("table_2_2.csv", "table_3_euclidean_vs_riemannian.csv", "table_3_7.csv", "table_4_1.csv",
                "table_4_2.csv", "table_3_2.csv", "table_3_3.csv")  # fmt: skip


# Registry networks with layers that several seeds stacked in one job cannot train exactly like
# one seed alone (flatscape.core.train_group.inexact_layers, which a test keeps equal to this):
# named here so that the config check needs no torch.
UNGROUPABLE_NETWORKS = {"vgg16_cifar": ("Dropout",), "vgg11": ("BatchNorm2d",), "vgg16": ("BatchNorm2d",),
                        "resnet18": ("BatchNorm2d",)}  # fmt: skip


# Training images of each data set as the thesis uses them (torchvision's train splits; digits:
# scikit-learn's 1,797 less the seeded test fifth), so that a Table 3.7 row asking for more is
# refused when the config is read, before any job runs (a smaller local copy is still caught
# when its run starts, by flatscape.ch3.train.training_subset).
TRAIN_SIZES = {"mnist": 60_000, "kmnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "digits": 1_437}


# Sources the `data` target stages (fetches or checks) before any job reads them; `sklearn` needs none.
# Here, not in config: flatscape.core.datasets reads it, and the core installs without jsonschema.
STAGED_SOURCES = ("download", "mirror", "imagefolder_tar")
