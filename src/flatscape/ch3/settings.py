"""The settings of each Chapter 3 job, one frozen dataclass per job.

Each is built once from the validated config by ``flatscape.pipeline.config.settings``
(field names are the config's keys; defaults live in the schema only) and passed whole
to the job's library function. A rule's ``params`` carry exactly these fields, so a
setting reruns only the jobs that read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flatscape.core.train import Optimiser


@dataclass(frozen=True)
class InvarianceSettings:
    """Tables 3.2, 3.3 and the Euclidean-vs-Riemannian table (Sec. 3.4.2)."""

    num_samples: int
    seed: int
    runs_table_3_2: int
    runs_table_3_3: int
    power_tol: float
    lanczos_tol: float
    max_hvp: int
    trace_probes: int
    device: str


@dataclass(frozen=True)
class ConvergenceSettings:
    """Figure 3.1: the power method's (and Lanczos') convergence on F1."""

    num_samples: int
    seed: int
    runs_figure_3_1: int
    power_tol: float
    lanczos_tol: float
    max_hvp: int
    device: str


@dataclass(frozen=True)
class RunSettings:
    """One training run of Sec. 3.5: a row's network trained with one batch size from one seed."""

    network: str
    bias: bool
    train_size: int | None
    batch_size: int
    epochs: int
    optimiser: Optimiser
    stop_loss: float | None  # None: protocol fixed_epochs, exactly `epochs` epochs with no CE stop
    seed: int
    checkpoint_every: int
    device: str


@dataclass(frozen=True)
class MeasureSettings:
    """The flatness measurement of one trained run (Table 3.5's samples, the Lanczos settings)."""

    samples: int
    eps: float | None
    method: str
    tol: float
    max_hvp: int
    batch_size: int | None
    dtype: str
    float64_below: float | None  # measure in float64 where the flatness loss is below this
    warm_start: tuple[Mapping, ...] | str  # "auto": the library's rule
    rescale_log_range: float
    seed: int
    device: str


@dataclass(frozen=True)
class PathMeasureSettings:
    """The flatness measurement of one run's snapshot at CE < ``threshold`` (no rescaled re-measurement)."""

    threshold: float
    samples: int
    eps: float | None
    method: str
    tol: float
    max_hvp: int
    batch_size: int | None
    dtype: str
    float64_below: float | None  # measure in float64 where the flatness loss is below this
    warm_start: tuple[Mapping, ...] | str  # "auto": the library's rule
    seed: int
    device: str


@dataclass(frozen=True)
class LinePlotRow:
    dataset: str
    network: str
    arm: str | None
    flatness_samples: int
    small_batch: int
    large_batch: int


@dataclass(frozen=True)
class LinePlotSettings:
    """Figure 3.2: layer-normalised curves of each row's first small- and large-batch run."""

    rows: tuple[LinePlotRow, ...]
    directions: int
    num_points: int
    seed: int
    device: str


@dataclass(frozen=True)
class SettingsTables:
    """Tables 3.4-3.6, written from the configured rows."""

    rows: tuple[Mapping, ...]
    stop_loss: float | None
