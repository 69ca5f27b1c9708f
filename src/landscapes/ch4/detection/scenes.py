"""Synthetic coded-aperture-camera truck videos and the on-disk video format (thesis Sec. 4.5.1).

The thesis's short-wave IR videos of three pickup trucks (Ram, Silverado, Frontier)
driving in a parking lot are private. This module makes seeded grey-level videos that
pose the same problem: a textured parking lot (asphalt grain, stall lines, stains,
column fixed-pattern noise), slow illumination drift and sensor noise; one truck per
video driving a smooth path at 30 frames/s; three truck classes that differ in
silhouette (bed length, cab shape, hood height, aspect) and internal pattern
(stripes, bars, checks), never in brightness (paint is drawn per video, whatever the
class). A "day 1" set is for training and a "day 2" set for testing (other
backgrounds, lighting, noise and paths), and two multi-target videos show all three
trucks driving between the lot (near, large) and a remote spot (far, small).

Every video is written in the format documented in ``docs/video_format.md`` (and in
:func:`write_video`), so real videos in that format run through the same rules::

    <root>/manifest.json                  format, classes, fps, split of every video
    <root>/<video>/frames/000000.png ...  8-bit greyscale frames, one PNG per frame
    <root>/<video>/boxes.csv              frame,track,class,x0,y0,x1,y1 (pixels)

Boxes are in continuous pixel coordinates: pixel (row i, column j) covers
``[j, j + 1) x [i, i + 1)``, so a box spans ``x0 <= x < x1`` and ``y0 <= y < y1``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from landscapes.pipeline.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "landscapes-video/1"
# Synthetic stand-ins named after the thesis's three pickups, so the thesis's columns line up.
CLASSES = ("silverado", "ram", "frontier")
SPLITS = ("train", "test", "finetune", "multi_test")
BOX_COLUMNS = ("frame", "track", "class", "x0", "y0", "x1", "y1")
SUPERSAMPLE = 4  # sub-pixel samples per axis when rasterising a truck (smooth sub-pixel motion)
MIN_VISIBLE = 0.25  # a box clipped by the frame edge is labelled only if this share of it stays inside


# ---- data types -----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Targets:
    """Ground truth of a video: one row per (frame, target) with a box ``(x0, y0, x1, y1)``."""

    frame: np.ndarray  # (n,) int64
    track: np.ndarray  # (n,) int64, constant along one target's life
    cls: np.ndarray  # (n,) int64 index into the class list
    box: np.ndarray  # (n, 4) float64

    def __post_init__(self):
        n = len(self.frame)
        if not (len(self.track) == len(self.cls) == n and self.box.shape == (n, 4)):
            raise ValueError("Targets arrays must have matching lengths and boxes of shape (n, 4)")

    def at(self, frame: int) -> "Targets":
        keep = self.frame == frame
        return Targets(self.frame[keep], self.track[keep], self.cls[keep], self.box[keep])

    def __len__(self) -> int:
        return len(self.frame)

    @staticmethod
    def empty() -> "Targets":
        z = np.zeros(0, np.int64)
        return Targets(z, z.copy(), z.copy(), np.zeros((0, 4)))

    @staticmethod
    def concat(parts: list["Targets"]) -> "Targets":
        if not parts:
            return Targets.empty()
        return Targets(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("frame", "track", "cls", "box")))


@dataclass(frozen=True, eq=False)
class Video:
    """Frames ``(T, H, W)`` uint8 and their ground truth."""

    name: str
    frames: np.ndarray = field(repr=False)
    targets: Targets = field(repr=False)
    fps: float = 30.0


# ---- truck classes ----------------------------------------------------------------------
# Side views in unit coordinates: u from the tailgate (0) to the front bumper (1), v from
# the roof (0) to the ground (1). Each silhouette touches all four edges of the unit
# square, so a truck's bounding box is exactly the rectangle it is drawn into.


@dataclass(frozen=True)
class TruckShape:
    body: tuple[tuple[float, float], ...]
    windows: tuple[tuple[tuple[float, float], ...], ...]
    wheels_u: tuple[float, float]
    aspect: float  # height / length
    length: float  # length relative to the longest class
    pattern: str


SHAPES: dict[str, TruckShape] = {
    # long bed, boxy upright cab, tall flat hood, horizontal stripes
    "silverado": TruckShape(
        body=((0, 0.42), (0.56, 0.42), (0.58, 0.0), (0.80, 0.0), (0.84, 0.30), (1.0, 0.34), (1.0, 0.80), (0, 0.80)),
        windows=(((0.61, 0.07), (0.78, 0.07), (0.81, 0.28), (0.61, 0.28)),),
        wheels_u=(0.18, 0.82),
        aspect=0.40,
        length=1.0,
        pattern="stripes",
    ),
    # short bed, raised cab with raked windshield, high stepped hood, vertical bars
    "ram": TruckShape(
        body=((0, 0.50), (0.46, 0.50), (0.49, 0.02), (0.66, 0.0), (0.78, 0.22), (1.0, 0.26), (1.0, 0.80), (0, 0.80)),
        windows=(((0.52, 0.07), (0.65, 0.06), (0.74, 0.24), (0.52, 0.24)),),
        wheels_u=(0.17, 0.80),
        aspect=0.47,
        length=0.95,
        pattern="bars",
    ),
    # compact crew cab with a rounded roof, low hood, two side windows, checks
    "frontier": TruckShape(
        body=((0, 0.48), (0.38, 0.48), (0.42, 0.08), (0.50, 0.0), (0.66, 0.0), (0.80, 0.42), (1.0, 0.48),
              (1.0, 0.80), (0, 0.80)),
        windows=(((0.45, 0.10), (0.55, 0.08), (0.55, 0.38), (0.45, 0.38)), ((0.58, 0.08), (0.66, 0.08), (0.75, 0.38), (0.58, 0.38))),
        wheels_u=(0.20, 0.82),
        aspect=0.44,
        length=0.82,
        pattern="checks",
    ),
}


def _inside_polygon(u: np.ndarray, v: np.ndarray, poly) -> np.ndarray:
    """Even-odd rule point-in-polygon test, vectorised over sample points."""
    inside = np.zeros(u.shape, dtype=bool)
    pts = list(poly)
    for (ua, va), (ub, vb) in zip(pts, pts[1:] + pts[:1]):
        crosses = (va > v) != (vb > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            u_cross = ua + (v - va) * (ub - ua) / (vb - va)
        inside ^= crosses & (u < u_cross)
    return inside


def truck_appearance(shape: TruckShape, u: np.ndarray, v: np.ndarray, *, paint: float, contrast: float):
    """Coverage (bool) and grey level of a truck at unit coordinates ``(u, v)``.

    Body = polygon in paint colour modulated by the class's pattern; windows darker;
    two wheels (round in pixels: radius 0.2 in v is ``0.2 * aspect`` in u) reaching v = 1.
    """
    body = _inside_polygon(u, v, shape.body)
    level = np.full(u.shape, paint)
    if shape.pattern == "stripes":
        wave = np.sign(np.sin(2 * np.pi * v * 5.0))
    elif shape.pattern == "bars":
        wave = np.sign(np.sin(2 * np.pi * u * 7.0))
    else:
        wave = np.sign(np.sin(2 * np.pi * u * 6.0) * np.sin(2 * np.pi * v * 4.0))
    level = level + contrast * wave
    window = np.zeros(u.shape, dtype=bool)
    for poly in shape.windows:
        window |= _inside_polygon(u, v, poly)
    level = np.where(window, 0.5 * paint + 0.05, level)
    wheel = np.zeros(u.shape, dtype=bool)
    hub = np.zeros(u.shape, dtype=bool)
    ru = 0.2 * shape.aspect
    for uc in shape.wheels_u:
        r2 = ((u - uc) / ru) ** 2 + ((v - 0.8) / 0.2) ** 2
        wheel |= r2 <= 1.0
        hub |= r2 <= 0.3
    level = np.where(wheel, np.where(hub, 0.55, 0.08), level)
    return body | wheel, np.clip(level, 0.0, 1.0)


def draw_truck(canvas: np.ndarray, box, shape: TruckShape, *, facing_right: bool, paint: float, contrast: float) -> None:
    """Rasterise a truck into ``canvas`` (H, W floats, in place) with anti-aliased edges.

    ``box`` is the unclipped rectangle ``(x0, y0, x1, y1)`` the silhouette fills; each
    pixel averages ``SUPERSAMPLE**2`` point samples, so sub-pixel motion is smooth.
    """
    h, w = canvas.shape
    x0, y0, x1, y1 = box
    j0, j1 = max(0, math.floor(x0)), min(w, math.ceil(x1))
    i0, i1 = max(0, math.floor(y0)), min(h, math.ceil(y1))
    if j1 <= j0 or i1 <= i0:
        return
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    xs = (np.arange(j0, j1)[:, None] + offsets[None, :]).ravel()
    ys = (np.arange(i0, i1)[:, None] + offsets[None, :]).ravel()
    u = (xs[None, :] - x0) / (x1 - x0)
    v = (ys[:, None] - y0) / (y1 - y0)
    u, v = np.broadcast_arrays(u if facing_right else 1.0 - u, v)
    covered, level = truck_appearance(shape, u, v, paint=paint, contrast=contrast)
    s = SUPERSAMPLE
    ni, nj = i1 - i0, j1 - j0
    alpha = covered.reshape(ni, s, nj, s).mean(axis=(1, 3))
    value = (covered * level).reshape(ni, s, nj, s).mean(axis=(1, 3))
    region = canvas[i0:i1, j0:j1]
    canvas[i0:i1, j0:j1] = region * (1.0 - alpha) + value


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
                if all(_iou(box, other) <= 0.3 for other in placed):
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


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# ---- the on-disk format --------------------------------------------------------------------


def write_video(video: Video, folder: str | os.PathLike, classes=CLASSES) -> None:
    """Write ``video`` as ``folder/frames/%06d.png`` (8-bit grey) plus ``folder/boxes.csv``.

    ``boxes.csv`` has one row per (frame, target): ``frame`` (0-based index of the PNG),
    ``track`` (an id constant along one target's life), ``class`` (a name from the
    manifest's class list), and the box ``x0,y0,x1,y1`` in pixels. Frames with no
    row show no target.
    """
    from PIL import Image

    folder = Path(folder)
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(video.frames):
        Image.fromarray(frame, mode="L").save(folder / "frames" / f"{t:06d}.png", optimize=False)
    tg = video.targets
    df = pd.DataFrame({
        "frame": tg.frame, "track": tg.track, "class": [classes[c] for c in tg.cls],
        "x0": tg.box[:, 0], "y0": tg.box[:, 1], "x1": tg.box[:, 2], "y1": tg.box[:, 3],
    })
    with atomic_path(folder / "boxes.csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.3f")


class VideoFormatError(ValueError):
    """A video folder does not follow docs/video_format.md; the message names the file."""


def read_manifest(root: str | os.PathLike) -> dict:
    root = Path(root)
    path = root / "manifest.json"
    if not path.exists():
        raise VideoFormatError(f"{path}: missing (see docs/video_format.md)")
    manifest = json.loads(path.read_text())
    for key in ("format", "classes", "fps", "videos"):
        if key not in manifest:
            raise VideoFormatError(f"{path}: missing key {key!r}")
    if manifest["format"] != FORMAT:
        raise VideoFormatError(f"{path}: format {manifest['format']!r} is not {FORMAT!r}")
    for name, split in manifest["videos"].items():
        if split not in SPLITS:
            raise VideoFormatError(f"{path}: video {name!r} has split {split!r}; use one of {SPLITS}")
    missing = [s for s in ("train", "test") if s not in manifest["videos"].values()]
    if missing:
        raise VideoFormatError(f"{path}: no video in split(s) {missing}")
    return manifest


def videos_in(manifest: dict, split: str) -> list[str]:
    return sorted(name for name, s in manifest["videos"].items() if s == split)


def read_video(root: str | os.PathLike, name: str, manifest: dict | None = None) -> Video:
    """Read one video of a dataset folder; errors name the offending file."""
    from PIL import Image

    root = Path(root)
    manifest = manifest or read_manifest(root)
    classes = list(manifest["classes"])
    folder = root / name
    pngs = sorted((folder / "frames").glob("*.png"))
    if not pngs:
        raise VideoFormatError(f"{folder / 'frames'}: no PNG frames")
    frames = []
    for p in pngs:
        with Image.open(p) as im:
            frames.append(np.asarray(im.convert("L"), dtype=np.uint8))
    if len({f.shape for f in frames}) != 1:
        raise VideoFormatError(f"{folder / 'frames'}: frames differ in size")
    frames_arr = np.stack(frames)
    csv = folder / "boxes.csv"
    if not csv.exists():
        raise VideoFormatError(f"{csv}: missing")
    df = pd.read_csv(csv)
    if list(df.columns) != list(BOX_COLUMNS):
        raise VideoFormatError(f"{csv}: columns {list(df.columns)} are not {list(BOX_COLUMNS)}")
    unknown = sorted(set(df["class"]) - set(classes))
    if unknown:
        raise VideoFormatError(f"{csv}: classes {unknown} are not in the manifest's {classes}")
    t, h, w = frames_arr.shape
    box = df[["x0", "y0", "x1", "y1"]].to_numpy(np.float64)
    bad = (df["frame"] < 0) | (df["frame"] >= t) | (box[:, 0] >= box[:, 2]) | (box[:, 1] >= box[:, 3])
    bad |= (box[:, 0] < -0.5) | (box[:, 1] < -0.5) | (box[:, 2] > w + 0.5) | (box[:, 3] > h + 0.5)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise VideoFormatError(f"{csv}: row {row + 2} has a frame outside 0..{t - 1} or a box outside the {w}x{h} frame")
    targets = Targets(df["frame"].to_numpy(np.int64), df["track"].to_numpy(np.int64),
                      np.array([classes.index(c) for c in df["class"]], np.int64), box)
    return Video(name, frames_arr, targets, float(manifest["fps"]))


def _write_manifest(root: Path, videos: dict[str, str], classes, fps: float, extra: dict | None = None) -> dict:
    manifest = {"format": FORMAT, "classes": list(classes), "fps": fps, "videos": videos, **(extra or {})}
    with atomic_path(root / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


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
                write_video(video, root / name)
                splits[name] = split
    if multi_target_frames > 0:
        for day, split in ((1, "finetune"), (2, "multi_test")):
            name = f"multi_day{day}"
            video = multi_truck_video(name, day=day, frames=multi_target_frames, seed=seed * 100_003 + day * 10_007 + 7_777,
                                      paints=[truck_paint(seed, cls, 0) for cls in range(len(CLASSES))],
                                      **common)
            write_video(video, root / name)
            splits[name] = split
    manifest = _write_manifest(root, splits, CLASSES, fps, {"generator": "landscapes.ch4.detection.scenes", "seed": seed})
    log.info("wrote %d synthetic videos (%dx%d, %d frames each) under %s", len(splits), height, width, frames, root)
    return manifest


def import_folder(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Check a user's video folder against the format (every video is read) and copy it to ``dst``."""
    src, dst = Path(src), Path(dst)
    manifest = read_manifest(src)
    for name in manifest["videos"]:
        video = read_video(src, name, manifest)
        log.info("%s: %d frames of %dx%d, %d labelled boxes", name, *video.frames.shape, len(video.targets))
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return manifest
