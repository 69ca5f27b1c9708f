"""The three truck classes of the synthetic videos (Sec. 4.5.1) and how a truck is drawn.

Side views in unit coordinates: u from the tailgate (0) to the front bumper (1), v from
the roof (0) to the ground (1). Each silhouette touches all four edges of the unit
square, so a truck's bounding box is exactly the rectangle it is drawn into. Classes
differ in silhouette (bed length, cab shape, hood height, aspect) and internal pattern
(stripes, bars, checks), never in brightness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Synthetic stand-ins named after the thesis's three pickups, so the thesis's columns line up.
CLASSES = ("silverado", "ram", "frontier")
SUPERSAMPLE = 4  # sub-pixel samples per axis when rasterising a truck (smooth sub-pixel motion)


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
