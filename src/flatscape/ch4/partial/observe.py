"""Partial observation of image batches (Sec. 4.3): augmentation, observed training copies, fixed test masks.

Training draws fresh masks every batch from the epoch's generator (so runs stay
reproducible); test sets are observed once, with masks fixed by the seed and the
ratio, and cached.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from flatscape.ch4.partial.settings import Augment, EncodeSettings
from flatscape.core.datasets import load
from flatscape.core.encoders import observation_mask, partial_observation
from flatscape.pipeline.io import save_arrays
from flatscape.pipeline.naming import Ratio

log = logging.getLogger(__name__)


def augment(x: torch.Tensor, g: torch.Generator, settings: Augment) -> torch.Tensor:
    """Random translations (whole pixels), horizontal flips and rotations of a batch (Sec. 4.4.1)."""
    n, _, h, w = x.shape
    translate, rotate_deg = settings.translate, settings.rotate_deg
    if settings.flip:
        flips = torch.rand(n, generator=g) < 0.5
        x = torch.where(flips.to(x.device)[:, None, None, None], x.flip(3), x)
    if translate == 0 and rotate_deg == 0:
        return x
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(rotate_deg)
    shift = torch.randint(-translate, translate + 1, (n, 2), generator=g).to(torch.float32)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0] * 2 / w], 1), torch.stack([sin, cos, shift[:, 1] * 2 / h], 1)], 1
    ).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def observe_copies(x: torch.Tensor, idx: torch.Tensor, g: torch.Generator, *, num_images: int,
                   ratios: tuple[Ratio, ...]) -> torch.Tensor:  # fmt: skip
    """Partially observe the rows of a batch that belong to copy ``k >= 1`` at ``ratios[k - 1]``.

    Copy 0 (``idx < num_images``) stays full. The mask seed is drawn from ``g`` for
    every batch, even one of full images only, so the generator's stream does not
    depend on which copies a batch holds.
    """
    copy = (idx // num_images).cpu()
    mask_seed = int(torch.randint(2**31 - 1, (1,), generator=g))
    if not bool((copy > 0).any()):
        return x
    keep = torch.ones(x.shape[0], x.shape[2], x.shape[3], dtype=torch.bool)
    for k, ratio in enumerate(ratios, start=1):
        rows = torch.nonzero(copy == k).flatten()
        if len(rows):
            mask, _ = observation_mask(len(rows), x.shape[2], x.shape[3], ratio.encoder_arg, seed=mask_seed,
                                       index_offset=k * len(x))  # fmt: skip
            keep[rows] = torch.from_numpy(mask)
    return x * keep.to(x.device)[:, None].to(x.dtype)


def observe_batch(x: torch.Tensor, g: torch.Generator, ratio: Ratio) -> torch.Tensor:
    """Every image of a batch observed at ``ratio``, with masks seeded from ``g``."""
    mask_seed = int(torch.randint(2**31 - 1, (1,), generator=g))
    mask, _ = observation_mask(len(x), x.shape[2], x.shape[3], ratio.encoder_arg, seed=mask_seed)
    return x * torch.from_numpy(mask).to(x.device)[:, None].to(x.dtype)


def eval_mask_seed(seed: int, ratio: Ratio) -> int:
    """Seed of the fixed test masks at one ratio: independent masks per ratio, fixed by ``seed``."""
    code = 1001 if ratio.is_random else int(round(ratio.value * 1000))
    return seed * 10_007 + code


def encode_test_sets(settings: EncodeSettings, data_path, out_paths) -> None:
    """Observe the test set of a cached data set at each ratio and cache each (images, labels, per-image ratios).

    ``out_paths`` follow ``settings.ratios``; every ratio's mask seed is its own
    (``eval_mask_seed``), so a set does not depend on which others are encoded with it.
    """
    if len(out_paths) != len(settings.ratios):
        raise ValueError(f"{len(settings.ratios)} ratios but {len(out_paths)} output paths")
    data = load(data_path)
    for ratio, out_path in zip(settings.ratios, out_paths):
        seed = eval_mask_seed(settings.seed, ratio)
        observed, mask, ratios = partial_observation(data.x_test, ratio.encoder_arg, seed=seed, return_mask=True)
        save_arrays(out_path, x=observed.astype(np.uint8), y=data.y_test, ratios=ratios)
        log.info("observed %d test images at ratio %s (mean kept fraction %.4f, mask seed %d)",
                 len(observed), ratio, mask.mean(), seed)  # fmt: skip
