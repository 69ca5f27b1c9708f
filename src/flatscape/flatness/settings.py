"""What one measurement of a user's model reads: the command line's options and a
``user_models`` entry of the workflow's config are both this dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flatscape.core.flatness.generalization import GENERALIZATION_MEASURES, PAC_BAYES_CRITERIA

SPECTRAL_MEASURES = ("riemannian", "euclidean", "both")
MEASURES = SPECTRAL_MEASURES + GENERALIZATION_MEASURES
CRITERIA = PAC_BAYES_CRITERIA
DTYPES = ("float32", "float64")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class FlatnessSettings:
    """One measurement (the fields are ``flatscape --help``'s options).

    ``model``: ``torchvision:NAME``, ``flatscape:NAME`` or ``package.module:callable``;
    ``data``: one of our data-set names, ``imagefolder:PATH`` or ``npz:PATH``;
    ``data_artifact``: a standardised ``.npz`` the pipeline already wrote for a named
    data set (None: materialise it from ``data_source`` into ``data_root``).
    ``top_k`` 1 measures the spectral norm only; ``spread`` 0 skips the spread.
    ``measure`` may also name one of the field's other measures
    (``flatscape.core.flatness.GENERALIZATION_MEASURES``), which read ``rho``, ``steps``,
    ``mc_samples``, ``bound``, ``criterion`` and ``mag_eps`` (None: the measure's default).
    """

    model: str
    weights: str | None
    model_args: Mapping[str, object]
    num_classes: int | None
    data: str
    data_source: str | None
    data_root: str
    data_path: str | None
    data_artifact: str | None
    split: str
    samples: int | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    batch_size: int | None
    device: str
    dtype: str
    measure: str
    top_k: int
    per_layer: bool
    trace: bool
    density: bool
    spread: int
    tol: float
    max_hvp: int
    seed: int
    rho: float | None = None
    steps: int | None = None
    mc_samples: int | None = None
    bound: float | None = None
    criterion: str = "error"
    mag_eps: float | None = None
