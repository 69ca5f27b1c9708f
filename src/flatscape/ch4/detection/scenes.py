"""Synthetic coded-aperture-camera truck videos (thesis Sec. 4.5.1).

The thesis's short-wave IR videos of three pickup trucks (Ram, Silverado, Frontier)
driving in a parking lot are private. This module makes seeded grey-level videos that
pose the same problem: a textured parking lot (asphalt grain, stall lines, stains,
column fixed-pattern noise), slow illumination drift and sensor noise; one truck per
video driving a smooth path at 30 frames/s; three truck classes
(:mod:`flatscape.ch4.detection.trucks`) whose paint is drawn per video, whatever the
class. A "day 1" set is for training and a "day 2" set for testing (other
backgrounds, lighting, noise and paths), and two multi-target videos show all three
trucks driving between the lot (near, large) and a remote spot (far, small).

Every video is written in the format of docs/video_format.md
(:mod:`flatscape.ch4.detection.video_io`), so real videos in that format run
through the same rules.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from flatscape.ch4.detection.boxes import box_iou
from flatscape.ch4.detection.trucks import CLASSES, SHAPES, draw_truck
from flatscape.ch4.detection.video_io import Targets, Video, import_folder, write_manifest, write_video

log = logging.getLogger(__name__)

MIN_VISIBLE = 0.25  # a box clipped by the frame edge is labelled only if this share of it stays inside


@dataclass(frozen=True)
class SceneSettings:
    """The videos (``ch4.detection.scenes``): synthetic ones of this size, or a user's folder (``path``)."""

    source: str
    path: str | None
    height: int
    width: int
    frames: int
    multi_target_frames: int
    videos_per_class: int
    truck_length: float


@dataclass(frozen=True)
class VideosJob:
    scenes: SceneSettings
    seed: int


# ---- scene conditions ---------------------------------------------------------------------


@dataclass(frozen=True)
class DayStyle:
    """What differs between recording days: lighting, noise and the look of the lot."""

    gain: tuple[float, float]
    drift: float  # amplitude of the slow illumination wave (relative)
    noise: float  # sensor noise std (grey levels in [0, 1])
    fixed_pattern: float  # column fixed-pattern noise std
    asphalt: tuple[float, float]  # range of the mean ground level
    line_angle_deg: tuple[float, float]


DAYS = {
    1: DayStyle(gain=(0.95, 1.05), drift=0.06, noise=0.02, fixed_pattern=0.01, asphalt=(0.38, 0.48), line_angle_deg=(-12, 12)),
    2: DayStyle(gain=(0.75, 0.90), drift=0.10, noise=0.035, fixed_pattern=0.015, asphalt=(0.30, 0.52), line_angle_deg=(15, 35)),
}


def parking_lot(height: int, width: int, rng: np.random.Generator, style: DayStyle) -> np.ndarray:
    """A grey parking lot in [0, 1]: asphalt grain at two scales, two rows of stall lines, stains, a curb."""
    base = rng.uniform(*style.asphalt)
    lot = base + 0.03 * _smooth_noise(rng, height, width, 0.8) + 0.05 * _smooth_noise(rng, height, width, max(height, width) / 16)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = math.radians(rng.uniform(*style.line_angle_deg))
    spacing = rng.uniform(0.12, 0.2) * width
    phase = rng.uniform(0, spacing)
    along = (xx * math.cos(angle) + yy * math.sin(angle) + phase) % spacing
    line = np.clip(1.2 - np.abs(along - spacing / 2), 0, 1)  # about two pixels wide, anti-aliased
    for lo, hi in ((0.05, 0.3), (0.62, 0.95)):
        band = (yy >= lo * height) & (yy < hi * height)
        lot += 0.22 * line * band
    for _ in range(rng.integers(3, 7)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.02, 0.06) * width
        lot -= 0.08 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    curb = rng.uniform(0.32, 0.42) * height
    lot += 0.12 * np.clip(1.5 - np.abs(yy - curb), 0, 1)
    return np.clip(lot, 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean and unit std."""
    field = gaussian_filter(rng.standard_normal((height, width)), sigma)
    return (field - field.mean()) / max(field.std(), 1e-12)


def illumination(frames: int, fps: float, rng: np.random.Generator, style: DayStyle) -> np.ndarray:
    """Per-frame gain: the day's level times a slow wave (period 8-20 s) and a linear drift."""
    t = np.arange(frames) / fps
    gain = rng.uniform(*style.gain)
    period = rng.uniform(8.0, 20.0)
    wave = style.drift * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    ramp = rng.uniform(-0.5, 0.5) * style.drift * t / max(t[-1], 1e-9) if frames > 1 else 0.0
    return gain * (1.0 + wave + ramp)


def _smooth_wave(frames: int, fps: float, rng: np.random.Generator, freq_hz: tuple[float, float]) -> np.ndarray:
    """A smooth signal in [-1, 1]: two sinusoids of random frequency and phase, normalised."""
    t = np.arange(frames) / fps
    s = sum(a * np.sin(2 * np.pi * rng.uniform(*freq_hz) * t + rng.uniform(0, 2 * np.pi)) for a in (1.0, 0.4))
    return s / 1.4


def _facing(xs: np.ndarray, start_right: bool) -> np.ndarray:
    """Heading from the horizontal velocity, held while the truck barely moves sideways."""
    facing = np.empty(len(xs), dtype=bool)
    current = start_right
    dx = np.gradient(xs) if len(xs) > 1 else np.zeros(1)
    for i, d in enumerate(dx):
        if abs(d) > 0.05:
            current = d > 0
        facing[i] = current
    return facing


def clip_box(box, height: int, width: int) -> tuple[np.ndarray, float]:
    """The box clipped to the frame and the share of its area that stays inside."""
    x0, y0, x1, y1 = box
    c = np.array([max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)])
    area = (x1 - x0) * (y1 - y0)
    inside = max(0.0, c[2] - c[0]) * max(0.0, c[3] - c[1])
    return c, (inside / area if area > 0 else 0.0)


def _compose(background, gains, trucks, style: DayStyle, rng: np.random.Generator, height: int, width: int):
    """Render frames and labels. ``trucks``: per truck (class index, boxes (T, 4), facing (T,), paint, contrast)."""
    frames = np.empty((len(gains), height, width), dtype=np.uint8)
    column_fpn = style.fixed_pattern * rng.standard_normal(width)[None, :]
    rows = []
    for t, gain in enumerate(gains):
        canvas = background.copy()
        # far (small) trucks first, so near ones pass in front of them
        order = sorted(range(len(trucks)), key=lambda k: trucks[k][1][t, 3] - trucks[k][1][t, 1])
        for k in order:
            cls, boxes, facing, paint, contrast = trucks[k]
            draw_truck(canvas, boxes[t], SHAPES[CLASSES[cls]], facing_right=bool(facing[t]), paint=paint, contrast=contrast)
            clipped, visible = clip_box(boxes[t], height, width)
            if visible >= MIN_VISIBLE:
                rows.append((t, k, cls, *clipped))
        frame = canvas * gain + column_fpn + style.noise * rng.standard_normal((height, width))
        frames[t] = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
    if rows:
        a = np.array(rows, dtype=np.float64)
        targets = Targets(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2].astype(np.int64), a[:, 3:7])
    else:
        targets = Targets.empty()
    return frames, targets


def _paint(rng: np.random.Generator) -> tuple[float, float]:
    """Paint level (dark or light, whatever the class) and pattern contrast."""
    paint = rng.uniform(0.05, 0.2) if rng.random() < 0.5 else rng.uniform(0.72, 0.92)
    return paint, rng.uniform(0.06, 0.12)


def truck_paint(seed: int, cls: int, k: int) -> tuple[float, float]:
    """Paint and pattern contrast of truck ``k`` of class ``cls``: one physical truck, the same on every day.

    As in Sec. 4.5.1, the test day films the same trucks as the training day, under
    other light; paint is drawn independently of the class, so a second truck of a
    class (``k = 1``) may be painted differently.
    """
    return _paint(np.random.default_rng([seed, 7_001, cls, k]))


def single_truck_video(
    name: str, cls: int, *, day: int, height: int, width: int, frames: int, fps: float, truck_length: float, seed: int,
    paint: tuple[float, float] | None = None,
) -> Video:
    """One truck of class ``cls`` driving a smooth path across the lot (Sec. 4.5.1's single-target videos).

    The centre follows two-sinusoid waves (0.06-0.14 Hz sideways, 0.03-0.1 Hz in depth);
    the truck grows by up to 15% toward the bottom of the frame (perspective) and turns
    to face the way it drives. ``paint`` (level, pattern contrast) identifies the
    physical truck (:func:`truck_paint`); None draws one from ``seed``.
    """
    rng = np.random.default_rng(seed)
    style = DAYS[day]
    shape = SHAPES[CLASSES[cls]]
    background = parking_lot(height, width, rng, style)
    gains = illumination(frames, fps, rng, style)
    length0 = truck_length * shape.length * width
    margin = 0.04 * width
    ys = 0.5 * height + 0.22 * height * _smooth_wave(frames, fps, rng, (0.03, 0.1))
    scale = 1.0 + 0.3 * (ys - 0.5 * height) / height
    lengths = length0 * scale
    heights = lengths * shape.aspect
    half_span = max(0.0, (width - 2 * margin - lengths.max()) / 2)
    xs = 0.5 * width + half_span * _smooth_wave(frames, fps, rng, (0.06, 0.14))
    boxes = np.stack([xs - lengths / 2, ys - heights / 2, xs + lengths / 2, ys + heights / 2], axis=1)
    facing = _facing(xs, bool(rng.random() < 0.5))
    drawn = _paint(rng)  # drawn either way, so the noise that follows depends on the seed alone
    paint, contrast = paint if paint is not None else drawn
    frames_u8, targets = _compose(background, gains, [(cls, boxes, facing, paint, contrast)], style, rng, height, width)
    return Video(name, frames_u8, targets, fps)


def multi_truck_video(
    name: str, *, day: int, height: int, width: int, frames: int, fps: float, truck_length: float, seed: int,
    far_scale: float = 0.4, paints: list[tuple[float, float]] | None = None,
) -> Video:
    """All three trucks driving back and forth between the lot and a remote spot (Sec. 4.5.1).

    Truck k's progress ``p(t) = (1 - cos(2 pi f t + phi)) / 2`` (0 = its stall near the
    camera, 1 = the remote spot up the road) sets its position and its size, which
    shrinks to ``far_scale`` of the near size. ``paints[c]`` is the paint of the class-``c``
    truck (the single-truck videos' trucks, in the thesis); None draws them from ``seed``.
    """
    rng = np.random.default_rng(seed)
    style = DAYS[day]
    background = parking_lot(height, width, rng, style)
    gains = illumination(frames, fps, rng, style)
    t = np.arange(frames) / fps
    stalls = rng.permutation([0.2, 0.5, 0.8])
    trucks = []
    for cls in range(len(CLASSES)):
        shape = SHAPES[CLASSES[cls]]
        p = 0.5 - 0.5 * np.cos(2 * np.pi * rng.uniform(0.04, 0.09) * t + rng.uniform(0, 2 * np.pi))
        scale = 1.0 + (far_scale - 1.0) * p
        lengths = truck_length * shape.length * width * scale
        heights = lengths * shape.aspect
        near_x, far_x = stalls[cls] * width, (0.45 + 0.1 * rng.random()) * width
        near_y, far_y = 0.78 * height, 0.22 * height
        xs = near_x + (far_x - near_x) * p
        ys = near_y + (far_y - near_y) * p
        boxes = np.stack([xs - lengths / 2, ys - heights / 2, xs + lengths / 2, ys + heights / 2], axis=1)
        drawn = _paint(rng)
        paint, contrast = paints[cls] if paints is not None else drawn
        trucks.append((cls, boxes, _facing(xs, bool(rng.random() < 0.5)), paint, contrast))
    frames_u8, targets = _compose(background, gains, trucks, style, rng, height, width)
    return Video(name, frames_u8, targets, fps)


def still_scenes(
    num_images: int, *, height: int, width: int, max_objects: int, truck_length: tuple[float, float], seed: int
) -> tuple[np.ndarray, list[Targets]]:
    """Multi-object still images for the detection-under-partial-observation study (Fig. 4.2c, offline presets).

    Each image: a parking lot of a random day, 1..``max_objects`` trucks of random class,
    size (``truck_length`` of the width), position and heading, placed so that no two
    boxes overlap by more than IoU 0.3. Returns uint8 images ``(N, H, W)`` and each
    image's targets (``frame`` holds the image index).
    """
    rng = np.random.default_rng(seed)
    images = np.empty((num_images, height, width), dtype=np.uint8)
    labels = []
    for i in range(num_images):
        style = DAYS[int(rng.integers(1, 3))]
        canvas = parking_lot(height, width, rng, style)
        placed: list[np.ndarray] = []
        cls_list: list[int] = []
        for _ in range(int(rng.integers(1, max_objects + 1))):
            cls = int(rng.integers(len(CLASSES)))
            shape = SHAPES[CLASSES[cls]]
            length = rng.uniform(*truck_length) * shape.length * width
            h = length * shape.aspect
            for _attempt in range(20):
                x0, y0 = rng.uniform(0, width - length), rng.uniform(0, height - h)
                box = np.array([x0, y0, x0 + length, y0 + h])
                if all(box_iou(box, other)[0, 0] <= 0.3 for other in placed):
                    paint, contrast = _paint(rng)
                    draw_truck(canvas, box, shape, facing_right=bool(rng.random() < 0.5), paint=paint, contrast=contrast)
                    placed.append(box)
                    cls_list.append(cls)
                    break
        gain = rng.uniform(*style.gain)
        frame = canvas * gain + style.noise * rng.standard_normal((height, width))
        images[i] = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
        n = len(placed)
        labels.append(Targets(np.full(n, i, np.int64), np.arange(n, dtype=np.int64), np.array(cls_list, np.int64),
                              np.array(placed, np.float64).reshape(n, 4)))
    return images, labels


def generate_dataset(
    root: str | os.PathLike,
    *,
    height: int,
    width: int,
    frames: int,
    multi_target_frames: int,
    videos_per_class: int,
    truck_length: float,
    seed: int,
    fps: float = 30.0,
) -> dict:
    """Write the synthetic data set: day-1 (train) and day-2 (test) single-truck videos per class, and two multi-target videos.

    Every video has its own seed derived from ``seed`` (lot, light, noise, path); truck
    ``k`` of a class keeps its paint on both days and in the multi-target videos (the
    same physical trucks, Sec. 4.5.1). The fine-tuning multi-target video is filmed on
    day 1, the test one on day 2.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, str] = {}
    common = dict(height=height, width=width, fps=fps, truck_length=truck_length)
    for day, split in ((1, "train"), (2, "test")):
        for cls, cls_name in enumerate(CLASSES):
            for k in range(videos_per_class):
                name = f"day{day}_{cls_name}_{k}"
                video_seed = seed * 100_003 + day * 10_007 + cls * 101 + k
                video = single_truck_video(name, cls, day=day, frames=frames, seed=video_seed,
                                           paint=truck_paint(seed, cls, k), **common)
                write_video(video, root / name, CLASSES)
                splits[name] = split
    if multi_target_frames > 0:
        for day, split in ((1, "finetune"), (2, "multi_test")):
            name = f"multi_day{day}"
            video = multi_truck_video(name, day=day, frames=multi_target_frames, seed=seed * 100_003 + day * 10_007 + 7_777,
                                      paints=[truck_paint(seed, cls, 0) for cls in range(len(CLASSES))],
                                      **common)
            write_video(video, root / name, CLASSES)
            splits[name] = split
    manifest = write_manifest(root, splits, CLASSES, fps, {"generator": "flatscape.ch4.detection.scenes", "seed": seed})
    log.info("wrote %d synthetic videos (%dx%d, %d frames each) under %s", len(splits), height, width, frames, root)
    return manifest


def build_videos(job: VideosJob, out_dir) -> dict:
    """The ``detection_videos`` job: a user's folder checked and copied, or the synthetic set written."""
    s = job.scenes
    if s.source == "folder":
        manifest = import_folder(s.path, out_dir)
    else:
        manifest = generate_dataset(out_dir, height=s.height, width=s.width, frames=s.frames,
                                    multi_target_frames=s.multi_target_frames, videos_per_class=s.videos_per_class,
                                    truck_length=s.truck_length, seed=job.seed)  # fmt: skip
    log.info("videos: %s", manifest["videos"])
    return manifest
