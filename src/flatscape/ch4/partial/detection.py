"""Sec. 4.4.2: detection under partial observation (Figure 4.2c).

A YOLO detector trained on full images and one trained on full plus partially
observed images (ratios 0.5, 0.25, 0.125) are scored by mAP50 on test images
observed at ratios 1.0 ... 0.1. Images are stored clean: partial observation
happens as Ultralytics loads them (:class:`ObservedLoader`), so no observed copy
is ever written to disk. Ultralytics itself is imported inside the functions that
use it: it must be configured by ``ultralytics_offline`` first.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from flatscape.ch4.detection.coding import derived_seed
from flatscape.ch4.detection.data import write_data_yaml, write_yolo_sample
from flatscape.ch4.detection.scenes import still_scenes
from flatscape.ch4.detection.trucks import CLASSES
from flatscape.ch4.detection.yolo import (
    YoloTraining,
    train_yolo,
    ultralytics_offline,
    yolo_device,
)
from flatscape.core.datasets import STAGE_HINT, DatasetError, check_staged_voc
from flatscape.core.datasets.voc import VOC_CLASSES
from flatscape.core.encoders import observation_mask
from flatscape.pipeline.io import load_json, save_json
from flatscape.pipeline.naming import fraction_label

log = logging.getLogger(__name__)


# ---- Settings of the three jobs (built by flatscape.pipeline.config.settings; defaults live in the schema) ----


@dataclass(frozen=True)
class DetectionDataSettings:
    """The images: synthetic scenes, or Pascal VOC 2007 staged under ``root`` (the raw-data folder)."""

    source: str
    num_train: int
    num_val: int
    image_size: int
    max_objects: int
    truck_length: tuple[float, float]
    seed: int
    root: str


@dataclass(frozen=True)
class DetectorSettings:
    """One detector: ``full`` (no ``train_ratios``) or ``ours``; ratios are fractions of pixels kept, never Random."""

    detector: YoloTraining
    train_ratios: tuple[float, ...]
    seed: int
    device: str


@dataclass(frozen=True)
class DetectorEvalSettings:
    """mAP50 of one detector (``method``: full or ours) at every test ratio."""

    method: str
    test_ratios: tuple[float, ...]
    imgsz: int
    batch: int
    seed: int
    device: str


# ---- The data --------------------------------------------------------------------------


def build_partial_detection_data(settings: DetectionDataSettings, out_dir, staged=None) -> dict:
    """The data of Fig. 4.2c in Ultralytics' layout: synthetic multi-object scenes or Pascal VOC 2007."""
    out_dir = Path(out_dir)
    if settings.source == "voc2007":
        return _prepare_voc2007(out_dir, settings.root, staged)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    counts = {}
    for split, n in (("train", settings.num_train), ("val", settings.num_val)):
        images, labels = still_scenes(n, height=settings.image_size, width=settings.image_size,
                                      max_objects=settings.max_objects, truck_length=settings.truck_length,
                                      seed=derived_seed(settings.seed, "stills", split))  # fmt: skip
        for i, (image, tg) in enumerate(zip(images, labels)):
            write_yolo_sample(out_dir, split, f"{split}{i:06d}", image, tg.box, tg.cls)
        counts[split] = int(n)
        counts[f"{split}_objects"] = int(sum(len(t) for t in labels))
    write_data_yaml(out_dir / "data.yaml", out_dir, train="images/train", val="images/val", names=list(CLASSES))
    save_json(out_dir / "summary.json", {"source": settings.source, **counts})
    log.info("%s", counts)
    return counts


def _prepare_voc2007(out_dir: Path, root, staged) -> dict:
    """Pascal VOC 2007 as the ``data`` target staged it (YOLO layout under ``<root>/voc2007/yolo``).

    Training uses trainval (5011 images) and testing test (4952), as in Sec. 4.4.2. No
    download happens here: missing or changed staged files fail, naming the ``data`` target.
    """
    if staged is None:
        raise DatasetError(f"Pascal VOC 2007 is not staged under {root}; {STAGE_HINT}")
    yolo = check_staged_voc(staged, root).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_data_yaml(out_dir / "data.yaml", yolo, train="images/trainval", val="images/test", names=list(VOC_CLASSES))
    counts = {"source": "voc2007", **{k: v for k, v in load_json(staged).items() if k.startswith(("trainval", "test"))}}
    save_json(out_dir / "summary.json", counts)
    log.info("%s", counts)
    return counts


# ---- Partial observation as images are loaded -----------------------------------------------


class ObservedLoader:
    """Wraps a dataset's ``load_image``: every loaded image is partially observed (Sec. 4.3).

    ``fixed_ratio`` set: image ``i`` keeps the pixels of the fixed mask
    ``observation_mask(seed, index i)`` (test sets). Otherwise each load draws a ratio
    uniformly from ``ratios`` and a fresh mask, so over training every image appears
    full and at each ratio equally often: full images plus observed copies, without
    writing the copies to disk. Masks act on the image as loaded (Ultralytics resizes
    its long side to ``imgsz`` first); augmentation follows.
    """

    def __init__(self, load, *, ratios: list[float] | None = None, fixed_ratio: float | None = None, seed: int):
        self.load, self.ratios, self.fixed_ratio, self.seed = load, ratios, fixed_ratio, seed
        self.draws = 0

    def __call__(self, i, *args, **kwargs):
        im, hw0, hw = self.load(i, *args, **kwargs)
        h, w = im.shape[:2]
        if self.fixed_ratio is not None:
            ratio, rng_mask = float(self.fixed_ratio), None
        else:
            rng = np.random.default_rng([self.seed, int(i), self.draws])
            self.draws += 1
            ratio = float(self.ratios[rng.integers(len(self.ratios))])
            rng_mask = rng
        if ratio >= 1.0:
            return im, hw0, hw
        if rng_mask is None:
            keep = observation_mask(1, h, w, ratio, seed=self.seed, index_offset=int(i))[0][0]
        else:
            keep = np.zeros(h * w, bool)
            keep[rng_mask.choice(h * w, max(1, round(ratio * h * w)), replace=False)] = True
            keep = keep.reshape(h, w)
        return im * keep.reshape(h, w, *([1] * (im.ndim - 2))).astype(im.dtype), hw0, hw


def observe_loaded_images(dataset, **kwargs):
    """Make ``dataset`` (an Ultralytics YOLODataset) observe every image it loads (see :class:`ObservedLoader`)."""
    dataset.load_image = ObservedLoader(dataset.load_image, **kwargs)
    return dataset


def partial_trainer(train_ratios: tuple[float, ...], seed: int):
    """A DetectionTrainer whose training images are observed at a ratio drawn from {1} + ``train_ratios``."""
    # Imported here: Ultralytics must be configured by ultralytics_offline() first.
    from ultralytics.models.yolo.detect import DetectionTrainer

    ratios = [1.0, *map(float, train_ratios)]

    class PartialObservationTrainer(DetectionTrainer):
        settings = {"ratios": ratios, "seed": seed}

        def build_dataset(self, img_path, mode="train", batch=None):
            dataset = super().build_dataset(img_path, mode, batch)
            if mode == "train":
                observe_loaded_images(dataset, ratios=ratios, seed=seed)
            return dataset

    return PartialObservationTrainer


def partial_validator(ratio: float, seed: int):
    """A DetectionValidator that scores images observed at ``ratio`` with fixed per-image masks."""
    # Imported here: Ultralytics must be configured by ultralytics_offline() first.
    from ultralytics.models.yolo.detect import DetectionValidator

    class PartialObservationValidator(DetectionValidator):
        def build_dataset(self, img_path, mode="val", batch=None):
            return observe_loaded_images(super().build_dataset(img_path, mode, batch), fixed_ratio=ratio, seed=seed)

    return PartialObservationValidator


# ---- The jobs --------------------------------------------------------------------------


def partial_detection_data(settings: DetectionDataSettings, out_dir, *, config_dir, threads: int,
                           staged=None) -> dict:  # fmt: skip
    """The ``partial_detection_data`` job; ``staged`` is the VOC 2007 manifest of the ``data`` target."""
    ultralytics_offline(config_dir, threads=threads)
    return build_partial_detection_data(settings, out_dir, staged)


def train_partial_detector(settings: DetectorSettings, data_dir, *, device: torch.device, run_dir, weights, metrics,
                           config_dir, threads: int) -> dict:  # fmt: skip
    """Train one Fig. 4.2c detector offline; save its weights and metrics (with its training ratios)."""
    ultralytics_offline(config_dir, threads=threads)
    trainer = partial_trainer(settings.train_ratios, settings.seed) if settings.train_ratios else None
    result = train_yolo(settings.detector, Path(data_dir) / "data.yaml", run_dir=run_dir, out_weights=weights,
                        seed=settings.seed, device=device, trainer=trainer)  # fmt: skip
    result["train_ratios"] = list(settings.train_ratios)
    save_json(metrics, result)
    return result


def partial_map50(settings: DetectorEvalSettings, weights, data_dir, *, device: torch.device, run_dir) -> list[dict]:
    """mAP50 (and mAP50-95) of one detector on the test images observed at each ratio (fixed masks per ratio)."""
    # Imported here: Ultralytics must be configured by ultralytics_offline() first.
    from ultralytics import YOLO

    data_yaml = str((Path(data_dir) / "data.yaml").resolve())
    records = []
    for ratio in settings.test_ratios:
        label = fraction_label(ratio)
        t0 = time.perf_counter()
        metrics = YOLO(str(weights)).val(
            validator=partial_validator(ratio, derived_seed(settings.seed, "partial-test", label)), data=data_yaml,
            imgsz=settings.imgsz, batch=settings.batch, device=yolo_device(device), workers=0, plots=False,
            verbose=False, project=str(Path(run_dir).resolve()), name=f"ratio{label}", exist_ok=True)  # fmt: skip
        records.append({"ratio": float(ratio), "map50": float(metrics.box.map50), "map50_95": float(metrics.box.map),
                        "seconds": time.perf_counter() - t0})  # fmt: skip
        log.info("ratio %s: mAP50 %.4f", label, records[-1]["map50"])
    return records


def evaluate_partial_detector(settings: DetectorEvalSettings, weights, data_dir, *, device: torch.device, run_dir,
                              out_path, config_dir, threads: int) -> list[dict]:  # fmt: skip
    """The ``evaluate_partial_detector`` job: :func:`partial_map50`, written as JSON with the detector's name."""
    ultralytics_offline(config_dir, threads=threads)
    records = partial_map50(settings, weights, data_dir, device=device, run_dir=run_dir)
    save_json(out_path, {"method": settings.method, "records": records})
    return records
