"""The on-disk video format of Sec. 4.5 (docs/video_format.md): data types, reading, writing.

::

    <root>/manifest.json                  format, classes, fps, split of every video
    <root>/<video>/frames/000000.png ...  8-bit greyscale frames, one PNG per frame
    <root>/<video>/boxes.csv              frame,track,class,x0,y0,x1,y1 (pixels)

Boxes are in continuous pixel coordinates: pixel (row i, column j) covers
``[j, j + 1) x [i, i + 1)``, so a box spans ``x0 <= x < x1`` and ``y0 <= y < y1``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from flatscape.pipeline.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "landscapes-video/1"
SPLITS = ("train", "test", "finetune", "multi_test")
BOX_COLUMNS = ("frame", "track", "class", "x0", "y0", "x1", "y1")


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


# ---- the on-disk format --------------------------------------------------------------------


def write_video(video: Video, folder: str | os.PathLike, classes) -> None:
    """Write ``video`` as ``folder/frames/%06d.png`` (8-bit grey) plus ``folder/boxes.csv``.

    ``boxes.csv`` has one row per (frame, target): ``frame`` (0-based index of the PNG),
    ``track`` (an id constant along one target's life), ``class`` (a name from the
    manifest's class list), and the box ``x0,y0,x1,y1`` in pixels. Frames with no
    row show no target.
    """
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


def write_manifest(root: Path, videos: dict[str, str], classes, fps: float, extra: dict | None = None) -> dict:
    manifest = {"format": FORMAT, "classes": list(classes), "fps": fps, "videos": videos, **(extra or {})}
    with atomic_path(root / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
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
