"""Chapter 4's measurement models: partial observation and pixel-wise coded exposure.

Pure functions on tensors (NumPy arrays are accepted and returned as NumPy). Images
are ``(N, C, H, W)``, videos ``(T, H, W)``. Randomness comes from a counter-based
hash of ``(seed, image index, pixel)``, so an image's mask depends only on the seed
and its index in the data set, never on batch size, chunking or device.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Ratio = float | Literal["random"]

_CHUNK = 4096  # images per vectorised block; bounds the (chunk, H*W) uint64 key array


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective mix of uint64 counters into uniform bits."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _keys(seed: int, stream: int, rows: np.ndarray, cols: int) -> np.ndarray:
    """Uniform uint64 keys for (row, col) pairs of one (seed, stream)."""
    base = _splitmix64(np.array([seed * 4 + stream], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        counters = (rows.astype(np.uint64)[:, None] << np.uint64(32)) + np.arange(cols, dtype=np.uint64)[None, :]
        return _splitmix64(counters ^ base)


def _uniform01(keys: np.ndarray) -> np.ndarray:
    """Map uint64 keys to floats in (0, 1] (53 random bits)."""
    return ((keys >> np.uint64(11)).astype(np.float64) + 1.0) / float(2**53)


def _check_ratio(ratio: Ratio, name: str = "ratio") -> None:
    if isinstance(ratio, str):
        if ratio != "random":
            raise ValueError(f"{name} must be a number in (0, 1] or 'random', got {ratio!r}")
        return
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in (0, 1] or 'random', got {type(ratio).__name__}")
    if not (0.0 < float(ratio) <= 1.0):
        raise ValueError(f"{name} must lie in (0, 1], got {ratio}")


def observation_mask(
    num_images: int, height: int, width: int, ratio: Ratio, *, seed: int, index_offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(N, H, W)`` keeping round(ratio * H * W) pixels per image, and each image's ratio.

    With ``ratio="random"`` each image's ratio is drawn uniformly from (0, 1] (the
    "Random" column of Table 4.1); at least one pixel is always kept.
    """
    _check_ratio(ratio)
    if num_images < 0 or height < 1 or width < 1:
        raise ValueError(f"bad mask shape ({num_images}, {height}, {width})")
    pixels = height * width
    masks = np.empty((num_images, pixels), dtype=bool)
    ratios = np.empty(num_images, dtype=np.float64)
    for start in range(0, num_images, _CHUNK):
        stop = min(start + _CHUNK, num_images)
        rows = np.arange(start, stop, dtype=np.int64) + index_offset
        if ratio == "random":
            r = _uniform01(_keys(seed, 1, rows, 1))[:, 0]
        else:
            r = np.full(stop - start, float(ratio))
        kept = np.maximum(1, np.rint(r * pixels).astype(np.int64))
        # A pixel is kept when its key ranks among the row's `kept` smallest keys.
        rank = np.argsort(np.argsort(_keys(seed, 0, rows, pixels), axis=1, kind="stable"), axis=1, kind="stable")
        masks[start:stop] = rank < kept[:, None]
        ratios[start:stop] = r
    return masks.reshape(num_images, height, width), ratios


def partial_observation(
    images: torch.Tensor | np.ndarray,
    ratio: Ratio,
    *,
    seed: int,
    index_offset: int = 0,
    return_mask: bool = False,
):
    """Keep a uniformly random ``ratio`` of pixel locations per image, zero the rest (thesis Sec. 4.3).

    Exactly ``round(ratio * H * W)`` locations are kept per image, the same for every
    channel. Image ``i`` of the input is image ``index_offset + i`` of its data set,
    which fixes its mask together with ``seed``. Returns the observed images (same
    type, dtype and device as the input) and, if ``return_mask``, the ``(N, H, W)``
    boolean mask and the per-image ratios.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    n, _, h, w = images.shape
    mask, ratios = observation_mask(n, h, w, ratio, seed=seed, index_offset=index_offset)
    if isinstance(images, np.ndarray):
        observed = images * mask[:, None, :, :].astype(images.dtype)
        return (observed, mask, ratios) if return_mask else observed
    mask_t = torch.from_numpy(mask).to(images.device)
    observed = images * mask_t[:, None, :, :].to(images.dtype)
    return (observed, mask_t, torch.from_numpy(ratios)) if return_mask else observed


def pce_mask(frames: int, height: int, width: int, fraction: float, *, exposure: int, seed: int, clip_index: int = 0) -> np.ndarray:
    """The exposure cube S ``(T, H, W)`` of pixel-wise coded exposure (thesis Sec. 4.5).

    ``round(fraction * H * W)`` pixels are active (so each pixel is active with
    probability ``fraction``); an active pixel integrates ``exposure`` consecutive
    frames starting at a uniform ``t_start`` in ``[0, T - exposure]``, so its window
    lies inside the clip.
    """
    _check_ratio(fraction, "fraction")
    if fraction == "random":
        raise ValueError("fraction must be a number in (0, 1] for coded exposure")
    if isinstance(exposure, bool) or not isinstance(exposure, (int, np.integer)) or exposure < 1:
        raise ValueError(f"exposure must be a positive integer, got {exposure!r}")
    if exposure > frames:
        raise ValueError(f"exposure ({exposure} frames) is longer than the clip ({frames} frames)")
    active, _ = observation_mask(1, height, width, float(fraction), seed=seed, index_offset=clip_index)
    starts = _keys(seed, 2, np.array([clip_index]), height * width)[0] % np.uint64(frames - exposure + 1)
    t = np.arange(frames)[:, None]
    window = (t >= starts[None, :].astype(np.int64)) & (t < starts[None, :].astype(np.int64) + exposure)
    return (window & active.reshape(1, -1)).reshape(frames, height, width)


def pce_encode(
    video: torch.Tensor | np.ndarray,
    fraction: float,
    *,
    exposure: int,
    seed: int,
    clip_index: int = 0,
    return_mask: bool = False,
):
    """One coded frame Y(m, n) = sum_t S(m, n, t) X(m, n, t) from a clip X of shape ``(T, H, W)``.

    Y is returned as float32 (a sum of ``exposure`` frames exceeds the input range;
    divide by ``exposure`` to bring it back). ``clip_index`` selects an independent
    mask for each clip of a longer video.
    """
    if video.ndim != 3:
        raise ValueError(f"video must be (T, H, W), got shape {tuple(video.shape)}")
    t, h, w = video.shape
    mask = pce_mask(t, h, w, fraction, exposure=exposure, seed=seed, clip_index=clip_index)
    if isinstance(video, np.ndarray):
        coded = (video.astype(np.float32) * mask).sum(axis=0)
        return (coded, mask) if return_mask else coded
    mask_t = torch.from_numpy(mask).to(video.device)
    coded = (video.to(torch.float32) * mask_t).sum(dim=0)
    return (coded, mask_t) if return_mask else coded


def pce_encode_video(
    frames: torch.Tensor | np.ndarray, fraction: float, *, frames_per_code: int, exposure: int, seed: int
):
    """Split ``(T, H, W)`` frames into consecutive clips of ``frames_per_code`` and code each.

    Returns ``(T // frames_per_code, H, W)`` coded frames; a trailing partial clip is dropped.
    """
    if frames_per_code < 1:
        raise ValueError(f"frames_per_code must be >= 1, got {frames_per_code}")
    clips = frames.shape[0] // frames_per_code
    coded = [
        pce_encode(frames[i * frames_per_code : (i + 1) * frames_per_code], fraction, exposure=exposure, seed=seed, clip_index=i)
        for i in range(clips)
    ]
    if isinstance(frames, np.ndarray):
        return np.stack(coded) if coded else np.zeros((0, *frames.shape[1:]), np.float32)
    return torch.stack(coded) if coded else torch.zeros((0, *frames.shape[1:]))
