"""Pixel-wise coded exposure (PCE) of a video (Sec. 4.5): coded frames and their ground truth."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from flatscape.ch4.detection.video_io import Targets, Video
from flatscape.core.encoders import pce_encode
from flatscape.pipeline.naming import fraction_label


def percent_label(fraction: float) -> str:
    return f"{100 * float(fraction):g}%"


def derived_seed(seed: int, *parts) -> int:
    """A 31-bit seed fixed by ``seed`` and names (video, fraction, purpose), independent of job order."""
    digest = hashlib.sha256(json.dumps([int(seed), *map(str, parts)]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass(frozen=True, eq=False)
class CodedVideo:
    """Coded frames ``(K, H, W)`` uint8 of one video and their ground truth (``frame`` = clip index)."""

    name: str
    fraction: float
    frames: np.ndarray = field(repr=False)
    targets: Targets = field(repr=False)
    frames_per_code: int = 1


def clip_targets(targets: Targets, *, frames_per_code: int, clips: int) -> Targets:
    """Ground truth of coded frames: for each clip and target, the union of its boxes over the clip.

    Every pixel's exposure window lies inside its clip, so light from anywhere the
    target was during the clip can reach the coded frame; the smallest box holding all
    of it is the union ``(min x0, min y0, max x1, max y1)`` of the per-frame boxes.
    """
    clip = targets.frame // frames_per_code
    keep = clip < clips
    rows = []
    for c, track in sorted(set(zip(clip[keep].tolist(), targets.track[keep].tolist()))):
        sel = (clip == c) & (targets.track == track)
        b = targets.box[sel]
        rows.append((c, track, int(targets.cls[sel][0]), b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()))
    if not rows:
        return Targets.empty()
    a = np.array(rows, dtype=np.float64)
    return Targets(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.int64), a[:, 3:7])


def code_video(video: Video, fraction: float, *, frames_per_code: int, exposure: int, seed: int) -> CodedVideo:
    """PCE coded frames of a video: ``Y = sum_t S X / exposure`` per clip of ``frames_per_code`` frames (Sec. 4.5).

    Dividing by ``exposure`` maps an exposed pixel back to the frames' grey range, so
    coded frames are stored as uint8 like raw ones; unexposed pixels are 0. Each video,
    fraction and clip gets its own exposure pattern S, fixed by ``seed`` and the names.
    """
    clips = len(video.frames) // frames_per_code
    mask_seed = derived_seed(seed, "pce", video.name, fraction_label(fraction))
    coded = np.empty((clips, *video.frames.shape[1:]), dtype=np.uint8)
    for c in range(clips):
        clip = video.frames[c * frames_per_code : (c + 1) * frames_per_code]
        y = pce_encode(clip, float(fraction), exposure=exposure, seed=mask_seed, clip_index=c) / exposure
        coded[c] = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    targets = clip_targets(video.targets, frames_per_code=frames_per_code, clips=clips)
    return CodedVideo(video.name, float(fraction), coded, targets, frames_per_code)
