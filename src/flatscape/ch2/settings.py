"""Chapter 2's settings, one frozen dataclass per job.

Each job's rule in workflow/rules/ch2.smk passes exactly the fields below (its
``params``), so editing a key another job reads does not rerun this one; the scripts
build the object once with ``flatscape.pipeline.config.settings``. There are no
defaults here: they live in the config schema (pipeline/schemas/ch2.schema.yaml), which
also checks the enums (bias rules, dtype, step rule) before any job starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flatscape.ch2.model import SparseCodingData, generate_data
from flatscape.pipeline.runtime import select_device


@dataclass(frozen=True)
class DataSettings:
    """The generative model of Sec. 2.6.1 shared by every job, and where its tensors live."""

    n: int
    num_signals: int
    a: float
    b: float
    seed: int
    device: str
    dtype: str

    def torch_device(self) -> torch.device:
        """The job's device; call once per job, as ``auto`` claims a GPU."""
        return select_device(self.device)

    def generate(self, h: int, p: float, device: torch.device) -> SparseCodingData:
        """The data of one (h, p) cell."""
        return generate_data(
            self.n, h, p, self.num_signals, a=self.a, b=self.b, seed=self.seed, device=device, dtype=getattr(torch, self.dtype)
        )


@dataclass(frozen=True)
class Table21Settings:
    """Table 2.1, the support-recovery table and the bias-reading study (one grid)."""

    data: DataSettings
    h_values: tuple[int, ...]
    p_values: tuple[float, ...]
    num_points: int
    bias_rule: str  # the reading Table 2.1 and the support table report
    study_rules: tuple[str, ...]  # further readings, tabulated beside it
    max_elements: int  # largest (points x h x N) block held at once

    @property
    def rules(self) -> tuple[str, ...]:
        """``bias_rule`` first, then the study's other readings, each once."""
        return tuple(dict.fromkeys((self.bias_rule, *self.study_rules)))


@dataclass(frozen=True)
class Table22Settings:
    """Table 2.2: gradient descent from columnwise distance (h * start_factor) delta."""

    data: DataSettings
    h_values: tuple[int, ...]
    p_values: tuple[float, ...]
    rules: tuple[str, ...]
    start_factor: float
    rel_tol: float
    max_iter: int
    step_rule: str


@dataclass(frozen=True)
class FigureSettings:
    """Figure 2.1 or 2.2: profiles along a random direction through A* at one h."""

    data: DataSettings
    h: int
    p_values: tuple[float, ...]
    bias_rule: str
    t_min: float
    t_max: float
    num_t: int
