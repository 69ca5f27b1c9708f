"""The detector's data sets in Ultralytics' layout: images, YOLO labels and the data file (Sec. 4.5.3)."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from flatscape.ch4.detection.coding import code_video
from flatscape.ch4.detection.video_io import read_manifest, read_video, videos_in
from flatscape.pipeline.io import atomic_path, save_json
from flatscape.pipeline.naming import fraction_label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorData:
    """The ``detection_yolo_data`` job: which videos, which PCE fractions, how frames are sampled and held out."""

    splits: tuple[str, ...]
    train_fractions: tuple[float, ...]
    frames_per_code: int
    exposure: int
    raw_stride: int
    val_fraction: float
    seed: int


def yolo_label_text(boxes: np.ndarray, classes: np.ndarray, height: int, width: int) -> str:
    """YOLO label lines ``class x_centre y_centre width height`` normalised by the image size."""
    lines = []
    for (x0, y0, x1, y1), c in zip(np.asarray(boxes).reshape(-1, 4), classes):
        x0, x1 = max(0.0, x0), min(float(width), x1)
        y0, y1 = max(0.0, y0), min(float(height), y1)
        if x1 <= x0 or y1 <= y0:
            continue
        lines.append(f"{int(c)} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                     f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")  # fmt: skip
    return "".join(line + "\n" for line in lines)


def write_yolo_sample(root: Path, split: str, stem: str, image: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> None:
    """One image (PNG, lossless so masks and coded pixels survive) and its label file in Ultralytics' layout."""
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / split / f"{stem}.png")
    h, w = image.shape[:2]
    (root / "labels" / split / f"{stem}.txt").write_text(yolo_label_text(boxes, classes, h, w))


def write_data_yaml(path: Path, root: Path, *, train, val, names: list[str]) -> None:
    """An Ultralytics data file with an absolute ``path`` and no ``download`` key (nothing is fetched)."""
    spec = {"path": str(Path(root).resolve()), "train": train, "val": val, "names": dict(enumerate(names))}
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(spec, sort_keys=False))


def split_point(frames: int, val_fraction: float) -> int:
    """First frame of the held-out tail of a training video; a clip is held out if any of its frames is."""
    return int(round(frames * (1.0 - val_fraction)))


def build_detector_dataset(videos_root, out_dir, job: DetectorData) -> dict:
    """The detector's training data (Sec. 4.5.3): full frames plus PCE frames at ``job.train_fractions``.

    From every video of ``job.splits``, the first ``1 - val_fraction`` of the frames
    give training images (every ``raw_stride``-th raw frame, and every coded frame
    whose clip lies there); the tail gives Ultralytics' validation images, so the test
    day is never seen. The detector has one class, ``truck``: the ResNet-18 names the
    model (Sec. 4.5.2 found YOLO's own classifier too weak).
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    manifest = read_manifest(videos_root)
    counts = {"train": 0, "val": 0}
    names = [n for s in job.splits for n in videos_in(manifest, s)]
    if not names:
        raise ValueError(f"no videos in splits {list(job.splits)} of {videos_root}")
    span = job.frames_per_code
    for name in names:
        video = read_video(videos_root, name, manifest)
        cut = split_point(len(video.frames), job.val_fraction)
        for t in range(0, len(video.frames), job.raw_stride):
            split = "train" if t < cut else "val"
            tg = video.targets.at(t)
            write_yolo_sample(out_dir, split, f"{name}_raw{t:06d}", video.frames[t], tg.box, np.zeros(len(tg), np.int64))
            counts[split] += 1
        for fraction in job.train_fractions:
            coded = code_video(video, fraction, frames_per_code=span, exposure=job.exposure, seed=job.seed)
            for c in range(len(coded.frames)):
                split = "train" if (c + 1) * span <= cut else "val"
                tg = coded.targets.at(c)
                write_yolo_sample(out_dir, split, f"{name}_pce{fraction_label(fraction)}_{c:05d}", coded.frames[c],
                                  tg.box, np.zeros(len(tg), np.int64))  # fmt: skip
                counts[split] += 1
    if counts["val"] == 0 or counts["train"] == 0:
        raise ValueError(f"detector data set has {counts['train']} training and {counts['val']} validation images; "
                         "use longer videos or another val_fraction")  # fmt: skip
    write_data_yaml(out_dir / "data.yaml", out_dir, train="images/train", val="images/val", names=["truck"])
    info = {"videos": names, "images": counts, "train_fractions": list(job.train_fractions)}
    save_json(out_dir / "summary.json", info)
    log.info("detector data: %d training and %d validation images from %d videos", counts["train"], counts["val"],
             len(names))  # fmt: skip
    return info
