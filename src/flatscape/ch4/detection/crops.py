"""The ResNet-18 that names the detected trucks (Sec. 4.5.2): crops of labelled targets, training, inference."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torchvision.ops import roi_align

from flatscape.ch4.detection.boxes import expand_boxes, jitter_boxes
from flatscape.ch4.detection.coding import code_video, derived_seed
from flatscape.ch4.detection.data import split_point
from flatscape.ch4.detection.video_io import read_manifest, read_video, videos_in
from flatscape.core.models import Normalise, build_model, load, model_spec
from flatscape.core.train import Optimiser, channel_stats, evaluate, fit
from flatscape.pipeline.io import save_json
from flatscape.pipeline.runtime import select_device

log = logging.getLogger(__name__)

CROP_CHANNELS = 3  # grey crops repeated to RGB, so ImageNet weights fit the first layer


@dataclass(frozen=True)
class CropSettings:
    """Which crops the classifier learns from: PCE fractions besides raw frames, geometry and box jitter."""

    fractions: tuple[float, ...]
    frames_per_code: int
    exposure: int
    raw_stride: int
    val_fraction: float
    crop_size: int
    context: float
    jitter: float


@dataclass(frozen=True)
class ClassifierTraining:
    epochs: int
    batch_size: int
    optimiser: Mapping[str, Any]  # core.train.Optimiser's keywords; the schema leaves its schedule keys optional


@dataclass(frozen=True)
class ClassifierJob:
    """The ``train_crop_classifier`` job; ``weights`` a local ImageNet state dict or None."""

    splits: tuple[str, ...]
    crops: CropSettings
    train: ClassifierTraining
    weights: str | None
    seed: int
    device: str


def crop_resize(frames: np.ndarray, frame_index: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear crops ``(n, 3, size, size)`` uint8 of grey frames (outside the frame reads 0), grey repeated to RGB."""
    if len(boxes) == 0:
        return np.zeros((0, CROP_CHANNELS, size, size), np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(frames)).float()[:, None]
    rois = torch.cat([torch.tensor(np.asarray(frame_index), dtype=torch.float32)[:, None],
                      torch.tensor(np.asarray(boxes), dtype=torch.float32)], 1)  # fmt: skip
    out = roi_align(x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return out.round().clamp(0, 255).to(torch.uint8).repeat(1, CROP_CHANNELS, 1, 1).numpy()


def classifier_crops(videos_root, splits, crops: CropSettings, *, seed: int) -> dict[str, np.ndarray]:
    """Training and held-out crops of every labelled target: raw frames and coded frames at ``crops.fractions``.

    Training crops use jittered boxes (the classifier sees detector boxes at test time);
    held-out crops (the tail of each video, as for the detector) use the true boxes.
    """
    manifest = read_manifest(videos_root)
    rng = np.random.default_rng(derived_seed(seed, "crops", *splits))
    parts = {"train": ([], []), "val": ([], [])}
    for name in [n for s in splits for n in videos_in(manifest, s)]:
        video = read_video(videos_root, name, manifest)
        cut = split_point(len(video.frames), crops.val_fraction)
        sources = [(video.frames, video.targets, 1, np.arange(len(video.frames)) % crops.raw_stride == 0)]
        for fraction in crops.fractions:
            coded = code_video(video, fraction, frames_per_code=crops.frames_per_code, exposure=crops.exposure,
                               seed=seed)  # fmt: skip
            sources.append((coded.frames, coded.targets, crops.frames_per_code, np.ones(len(coded.frames), bool)))
        for frames, targets, span, use in sources:
            keep = use[targets.frame]
            idx, box, cls = targets.frame[keep], targets.box[keep], targets.cls[keep]
            is_train = (idx + 1) * span <= cut
            for split, sel in (("train", is_train), ("val", ~is_train)):
                b = box[sel]
                if split == "train":
                    b = jitter_boxes(b, rng, crops.jitter)
                parts[split][0].append(crop_resize(frames, idx[sel], expand_boxes(b, crops.context), crops.crop_size))
                parts[split][1].append(cls[sel])
    out = {}
    for split, (xs, ys) in parts.items():
        out[f"x_{split}"] = np.concatenate(xs) if xs else np.zeros((0, CROP_CHANNELS, crops.crop_size, crops.crop_size),
                                                                    np.uint8)  # fmt: skip
        out[f"y_{split}"] = np.concatenate(ys).astype(np.int64) if ys else np.zeros(0, np.int64)
    out["classes"] = np.array(manifest["classes"])
    return out


def _crop_augment(x: torch.Tensor, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips (trucks drive both ways), gain 0.6-1.4 and offset +-0.15 (another day's light).

    Unexposed (zero) pixels of coded crops stay zero.
    """
    n = x.shape[0]
    dev, dt = x.device, x.dtype
    flip = (torch.rand(n, generator=g) < 0.5).to(dev)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    exposed = x > 0
    gain = (0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)).to(dev, dt)
    offset = (0.3 * torch.rand(n, 1, 1, 1, generator=g) - 0.15).to(dev, dt)
    return torch.where(exposed, (x * gain + offset).clamp(0, 1), x)


def train_crop_classifier(videos_root, job: ClassifierJob, *, model_path, metrics_path, init=None) -> dict:
    """Train the ResNet-18 that names the detected trucks (Sec. 4.5.2) and save it with its metrics.

    ``init`` is a saved classifier to fine-tune (the multi-target stage); otherwise the
    network starts from ``job.weights`` (the thesis started from ImageNet; none exists
    offline) or from scratch, behind the training crops' channel statistics.
    """
    device = select_device(job.device)
    data = classifier_crops(videos_root, job.splits, job.crops, seed=job.seed)
    classes = [str(c) for c in data["classes"]]
    x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    if len(x) % job.train.batch_size == 1:
        # BatchNorm cannot train on a last batch of one crop at 1x1 resolution; drop that crop
        x, y = x[:-1], y[:-1]
    torch.manual_seed(job.seed)  # the fresh network's initial weights
    if init is not None:
        model, record = load(init, device)
        spec = record["spec"]
    else:
        mean, std = channel_stats(x)
        shape = dict(in_channels=CROP_CHANNELS, image_size=job.crops.crop_size, num_classes=len(classes))
        spec = model_spec("resnet18", mean=mean, std=std, **shape)
        # The ImageNet weights only initialise it, so the spec that rebuilds it leaves them out.
        model = nn.Sequential(Normalise(mean, std), build_model("resnet18", weights=job.weights, **shape)).to(device)
    result = fit(model, x, y, epochs=job.train.epochs, batch_size=job.train.batch_size,
                 optimiser=Optimiser(**job.train.optimiser), seed=job.seed, transform=_crop_augment,
                 save_to=model_path, spec=spec, progress=False)  # fmt: skip
    val_loss, val_acc = (evaluate(model, torch.from_numpy(data["x_val"]), torch.from_numpy(data["y_val"]))
                         if len(data["y_val"]) else (math.nan, math.nan))  # fmt: skip
    metrics = {"classes": classes, "train_crops": int(len(x)), "heldout_crops": int(len(data["y_val"])),
               "train_accuracy": result.train_accuracy, "heldout_accuracy": val_acc, "heldout_loss": val_loss,
               "seconds": result.seconds, "history": result.history, "device": str(device),
               "init": str(init) if init else None}  # fmt: skip
    save_json(metrics_path, metrics)
    log.info("ResNet-18: train accuracy %.3f, held-out accuracy %.3f on %d crops", result.train_accuracy, val_acc,
             len(data["y_val"]))  # fmt: skip
    return metrics


@torch.no_grad()
def classify_crops(model: nn.Module, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
    device = next(model.parameters()).device
    out = [model(torch.from_numpy(crops[i : i + batch_size]).to(device).float() / 255.0).argmax(1).cpu()
           for i in range(0, len(crops), batch_size)]  # fmt: skip
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)
