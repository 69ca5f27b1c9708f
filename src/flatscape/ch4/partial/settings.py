"""The settings of each Chapter 4a job, one frozen class per job.

Each is built once by ``flatscape.pipeline.config.settings`` from the validated
config values its rule passes (the rule's ``cfg`` param) and handed whole to the
library. No defaults here: they live in the schema (``ch4.schema.yaml``).
Observation ratios arrive as :class:`~flatscape.pipeline.naming.Ratio` objects
(the rules parse them). ``device`` is the config's preference, which the script
turns into a device. The Figure 4.2c jobs keep their settings in
:mod:`flatscape.ch4.partial.detection`, beside the YOLO settings they nest.
"""

from __future__ import annotations

from dataclasses import dataclass

from flatscape.core.train import Optimiser
from flatscape.pipeline.naming import Ratio


@dataclass(frozen=True)
class Augment:
    """Random translations (pixels), horizontal flips and rotations (degrees) per batch."""

    translate: int
    flip: bool
    rotate_deg: float


@dataclass(frozen=True)
class Training:
    """One training run of ``flatscape.core.train.fit``."""

    epochs: int
    batch_size: int
    optimiser: Optimiser
    augment: Augment
    checkpoint_every: int


@dataclass(frozen=True)
class Network:
    name: str  # vgg11 or vgg16
    width: int
    batch_norm: bool


@dataclass(frozen=True)
class EncodeSettings:
    """The observed test sets, one per ratio (each with its own mask seed, so one job or several give the same sets)."""

    ratios: tuple[Ratio, ...]
    seed: int


@dataclass(frozen=True)
class ClassifierSettings:
    """VGG-16 (no ``train_ratios``) or VGG-16-Ours (full images plus a copy per ratio)."""

    model: Network
    train: Training
    train_ratios: tuple[Ratio, ...]
    seed: int
    device: str


@dataclass(frozen=True)
class AutoencoderSettings:
    """The Recon baselines' denoiser of one observation ratio."""

    ratio: Ratio
    width: int
    train: Training
    seed: int
    device: str


@dataclass(frozen=True)
class EvalSettings:
    """One row of Table 4.1: a method (the rule's wildcard) at each test ratio, in the order of the rule's tests."""

    method: str
    ratios: tuple[Ratio, ...]
    batch_size: int
    device: str


@dataclass(frozen=True)
class TimingSettings:
    """Figure 4.2b: one row per fixed test ratio, in the order of the rule's ``tests`` input."""

    ratios: tuple[Ratio, ...]
    batch_size: int
    repeats: int
    device: str
