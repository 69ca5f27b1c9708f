"""Chapter 4b: detection, tracking and classification on compressive measurements (thesis Sec. 4.4.2, 4.5).

Two experiments share this module.

* Sec. 4.5 (Tables 4.2-4.4, Figures 4.3-4.5): videos are coded with pixel-wise coded
  exposure (:func:`landscapes.core.encoders.pce_encode`), a YOLO detector (Ultralytics; the
  thesis used YOLOv2) trained on full frames plus 12.5% PCE frames finds the trucks in
  every coded frame (tracking by detection, with Ultralytics' ByteTrack associating
  detections across frames), and a ResNet-18 classifies the detected crops.
* Sec. 4.4.2 (Figure 4.2c): a detector trained on full images and one trained on full
  plus partially observed images (ratios 0.5, 0.25, 0.125), scored by mAP50 on test
  images observed at ratios 1.0 ... 0.1.

Ultralytics never touches the network here: :func:`ultralytics_offline` sets its
offline switches, a private config folder with local fonts and disabled integrations
before it is imported, and models are built from ``.yaml`` definitions or local files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from landscapes.core.encoders import observation_mask, pce_encode
from landscapes.pipeline.io import atomic_path, save_json
from landscapes.pipeline.naming import fraction_label
from landscapes.ch4.detection.scenes import Targets, Video, read_manifest, read_video, videos_in

log = logging.getLogger(__name__)

# ---- the thesis's printed numbers (SWIR videos), shown beside ours for comparison only ----
# Rows: coded aperture fraction; columns: Silverado, Ram, Frontier.
THESIS_TABLE_4_2 = {0.0625: (0.63, 0.65, 0.68), 0.125: (0.96, 0.95, 0.97), 0.25: (0.93, 0.93, 0.95),
                    0.5: (0.94, 0.93, 0.95), 1.0: (0.97, 0.98, 0.98)}
# (mean DICE, mean centroid distance in pixels of 640x512 SWIR frames)
THESIS_TABLE_4_3 = {0.0625: (0.782, 8.22), 0.125: (0.834, 7.75), 0.25: (0.816, 8.04), 0.5: (0.801, 8.13),
                    1.0: (0.852, 7.52)}
THESIS_TABLE_4_4 = {0.0625: (0.65, 0.72, 0.74), 0.125: (0.79, 0.94, 0.96), 0.25: (0.81, 0.95, 0.94),
                    0.5: (0.74, 0.93, 0.83), 1.0: (0.95, 0.98, 1.00)}
THESIS_CLASSES = ("silverado", "ram", "frontier")

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


# ---- Ultralytics without network -------------------------------------------------------


def ultralytics_offline(config_dir: str | os.PathLike, *, threads: int | None = None) -> ModuleType:
    """Import Ultralytics so that it cannot reach the network, and return the module.

    Before the first import: ``YOLO_OFFLINE=1`` (its online probe answers "offline"
    without a DNS lookup), ``YOLO_AUTOINSTALL=0`` (no pip), ``YOLO_CONFIG_DIR`` =
    ``config_dir`` (settings live there, not in the home folder), and matplotlib's
    DejaVuSans copied there as the ``Arial*.ttf`` fonts Ultralytics would otherwise
    download for its plots. Then every boolean setting (analytics ``sync``, the
    logging integrations, hub) is switched off and its data/weights/runs folders are
    pointed inside ``config_dir``. Ultralytics pins torch to ``cpu_count - 1``
    threads whenever it selects a CPU device; ``threads`` replaces that number so a
    job keeps the cores its rule declared.
    """
    config_dir = Path(config_dir).resolve()
    if "ultralytics" in sys.modules:
        if os.environ.get("YOLO_OFFLINE") != "1":
            raise RuntimeError("ultralytics was imported before ultralytics_offline(); its network switches are not set")
    else:
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_AUTOINSTALL"] = "0"
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads or torch.get_num_threads()))
        _install_fonts(config_dir / "Ultralytics")
    import ultralytics
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    _install_fonts(Path(USER_CONFIG_DIR))  # where Ultralytics looks, if it was imported first with another folder
    SETTINGS.update({key: False for key, value in SETTINGS.items() if isinstance(value, bool)})
    SETTINGS.update(datasets_dir=str(config_dir / "datasets"), weights_dir=str(config_dir / "weights"),
                    runs_dir=str(config_dir / "runs"))
    if threads:
        torch_utils.NUM_THREADS = int(threads)
        torch.set_num_threads(int(threads))
    # Ultralytics' logger does not propagate; send its lines to the job's log file too.
    from ultralytics.utils import LOGGER

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler not in LOGGER.handlers:
            LOGGER.addHandler(handler)
    return ultralytics


def _install_fonts(folder: Path) -> None:
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    folder.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        target = folder / name
        if target.exists():
            continue
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        try:
            os.link(source, tmp)  # every job has its own folder: a hard link saves a 0.7 MB copy each
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def yolo_device(device: torch.device) -> str:
    """Ultralytics' device string for a torch device (the job's visible GPU index, or 'cpu')."""
    return "cpu" if device.type == "cpu" else str(device.index or 0)


# ---- box geometry (Sec. 4.5.3's metrics) -----------------------------------------------------


def box_area(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas ``(len(a), len(b))`` of boxes ``(x0, y0, x1, y1)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(iw, 0, None) * np.clip(ih, 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union ``|A n B| / |A u B|``."""
    inter = box_intersection(a, b)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def box_dice(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DICE of paired boxes, ``2 |A n A*| / (|A| + |A*|)`` (Sec. 4.5.3), row by row."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    total = box_area(a) + box_area(b)
    return np.where(total > 0, 2 * inter / np.where(total > 0, total, 1), 0.0)


def centroid_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """l2 distance in pixels between the centres of paired boxes (Sec. 4.5.3), row by row."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ca = np.stack([(a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2], 1)
    cb = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
    return np.linalg.norm(ca - cb, axis=1)


def match_boxes(truth: np.ndarray, detected: np.ndarray, *, min_iou: float) -> list[tuple[int, int]]:
    """One-to-one matching of ground-truth to detected boxes maximising total IoU (Hungarian).

    Pairs with IoU below ``min_iou`` (or no overlap at all) are not matches: a box
    elsewhere in the frame is not a detection of this target.
    """
    from scipy.optimize import linear_sum_assignment

    if len(truth) == 0 or len(detected) == 0:
        return []
    iou = box_iou(truth, detected)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if iou[i, j] > 0 and iou[i, j] >= min_iou]


# ---- pixel-wise coded exposure of a video (Sec. 4.5) ------------------------------------------


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


# ---- Ultralytics data sets -------------------------------------------------------------------


def yolo_label_text(boxes: np.ndarray, classes: np.ndarray, height: int, width: int) -> str:
    """YOLO label lines ``class x_centre y_centre width height`` normalised by the image size."""
    lines = []
    for (x0, y0, x1, y1), c in zip(np.asarray(boxes).reshape(-1, 4), classes):
        x0, x1 = max(0.0, x0), min(float(width), x1)
        y0, y1 = max(0.0, y0), min(float(height), y1)
        if x1 <= x0 or y1 <= y0:
            continue
        lines.append(f"{int(c)} {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
                     f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}")
    return "".join(line + "\n" for line in lines)


def write_yolo_sample(root: Path, split: str, stem: str, image: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> None:
    """One image (PNG, lossless so masks and coded pixels survive) and its label file in Ultralytics' layout."""
    from PIL import Image

    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / split / f"{stem}.png")
    h, w = image.shape[:2]
    (root / "labels" / split / f"{stem}.txt").write_text(yolo_label_text(boxes, classes, h, w))


def write_data_yaml(path: Path, root: Path, *, train, val, names: list[str]) -> None:
    """An Ultralytics data file with an absolute ``path`` and no ``download`` key (nothing is fetched)."""
    import yaml

    spec = {"path": str(Path(root).resolve()), "train": train, "val": val, "names": dict(enumerate(names))}
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(spec, sort_keys=False))


def _split_point(frames: int, val_fraction: float) -> int:
    """First frame of the held-out tail of a training video; a clip is held out if any of its frames is."""
    return int(round(frames * (1.0 - val_fraction)))


def build_detector_dataset(
    videos_root, out_dir, *, splits: list[str], train_fractions: list[float], frames_per_code: int, exposure: int,
    raw_stride: int, val_fraction: float, seed: int,
) -> dict:
    """The detector's training data (Sec. 4.5.3): full frames plus PCE frames at ``train_fractions``.

    From every video of ``splits``, the first ``1 - val_fraction`` of the frames give
    training images (every ``raw_stride``-th raw frame, and every coded frame whose
    clip lies there); the tail gives Ultralytics' validation images, so the test day
    is never seen. The detector has one class, ``truck``: the ResNet-18 names the
    model (Sec. 4.5.2 found YOLO's own classifier too weak).
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    manifest = read_manifest(videos_root)
    counts = {"train": 0, "val": 0}
    names = [n for s in splits for n in videos_in(manifest, s)]
    if not names:
        raise ValueError(f"no videos in splits {splits} of {videos_root}")
    for name in names:
        video = read_video(videos_root, name, manifest)
        cut = _split_point(len(video.frames), val_fraction)
        for t in range(0, len(video.frames), raw_stride):
            split = "train" if t < cut else "val"
            tg = video.targets.at(t)
            write_yolo_sample(out_dir, split, f"{name}_raw{t:06d}", video.frames[t], tg.box, np.zeros(len(tg), np.int64))
            counts[split] += 1
        for fraction in train_fractions:
            coded = code_video(video, fraction, frames_per_code=frames_per_code, exposure=exposure, seed=seed)
            for c in range(len(coded.frames)):
                split = "train" if (c + 1) * frames_per_code <= cut else "val"
                tg = coded.targets.at(c)
                write_yolo_sample(out_dir, split, f"{name}_pce{fraction_label(fraction)}_{c:05d}", coded.frames[c],
                                  tg.box, np.zeros(len(tg), np.int64))
                counts[split] += 1
    if counts["val"] == 0 or counts["train"] == 0:
        raise ValueError(f"detector data set has {counts['train']} training and {counts['val']} validation images; "
                         "use longer videos or another val_fraction")
    write_data_yaml(out_dir / "data.yaml", out_dir, train="images/train", val="images/val", names=["truck"])
    info = {"videos": names, "images": counts, "train_fractions": list(train_fractions)}
    save_json(out_dir / "summary.json", info)
    log.info("detector data: %d training and %d validation images from %d videos", counts["train"], counts["val"], len(names))
    return info


# ---- YOLO training ------------------------------------------------------------------------------


def resolve_model(model: str) -> str:
    """A model definition Ultralytics can load offline: a packaged ``.yaml`` name, or an existing file."""
    if model.endswith((".yaml", ".yml")):
        return model
    if not Path(model).is_file():
        raise FileNotFoundError(f"YOLO weights {model!r} do not exist as a file; offline runs build models from a "
                                "'.yaml' definition or load a local weight file")
    return str(Path(model).resolve())


def yolo_train_args(*, data_yaml, epochs: int, imgsz: int, batch: int, optimiser: dict, extra: dict, seed: int,
                    device: torch.device, run_dir) -> dict:
    """Ultralytics' training arguments: the optimiser (no 'auto' choice), absolute paths, no plots, no workers by default."""
    run_dir = Path(run_dir).resolve()
    opt = {"sgd": "SGD", "adam": "Adam"}[optimiser["name"]]
    args = {
        "data": str(Path(data_yaml).resolve()), "epochs": int(epochs), "imgsz": int(imgsz), "batch": int(batch),
        "optimizer": opt, "lr0": float(optimiser["lr"]), "momentum": float(optimiser["momentum"]),
        "weight_decay": float(optimiser["weight_decay"]), "seed": int(seed), "deterministic": True,
        "device": yolo_device(device), "project": str(run_dir.parent), "name": run_dir.name, "exist_ok": True,
        "plots": False, "verbose": False, "workers": 0, "amp": device.type == "cuda",
    }
    args.update(extra)
    return args


def train_yolo(
    model: str, data_yaml, *, run_dir, out_weights, epochs: int, imgsz: int, batch: int, optimiser: dict,
    extra_args: dict, seed: int, device: torch.device, trainer=None,
) -> dict:
    """Train an Ultralytics YOLO detector and copy its best weights to ``out_weights``.

    ``model`` is a ``.yaml`` definition (trained from scratch) or a local weight file
    (fine-tuned). A run killed midway resumes from ``run_dir/weights/last.pt`` if it
    was started with the same settings. On a GPU, Ultralytics' AMP self-check (which
    downloads a model) is replaced by trusting AMP, so nothing is fetched.
    """
    from ultralytics import YOLO

    run_dir = Path(run_dir).resolve()
    args = yolo_train_args(data_yaml=data_yaml, epochs=epochs, imgsz=imgsz, batch=batch, optimiser=optimiser,
                           extra=extra_args, seed=seed, device=device, run_dir=run_dir)
    stamp = json.dumps({"model": model, "args": args, "trainer": getattr(trainer, "__name__", None),
                        "trainer_settings": getattr(trainer, "settings", None)}, sort_keys=True, default=str)
    last = run_dir / "weights" / "last.pt"
    resume = last.exists() and (run_dir / "settings.json").exists() and \
        (run_dir / "settings.json").read_text() == stamp and _resumable(last)
    _skip_amp_download()
    t0 = time.perf_counter()
    if resume:
        log.info("resuming %s from %s", run_dir.name, last)
        yolo = YOLO(str(last))
        yolo.train(resume=True, trainer=trainer, device=args["device"], workers=args["workers"])
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        (run_dir / "settings.json").write_text(stamp)
        yolo = YOLO(resolve_model(model))
        yolo.train(trainer=trainer, **args)
    seconds = time.perf_counter() - t0
    best = run_dir / "weights" / "best.pt"
    source = best if best.exists() else last
    with atomic_path(out_weights) as tmp:
        shutil.copyfile(source, tmp)
    history = pd.read_csv(run_dir / "results.csv").rename(columns=str.strip).to_dict("records") \
        if (run_dir / "results.csv").exists() else []
    for row in history:
        log.info("epoch %d: %s", int(row.get("epoch", 0)),
                 ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)))
    final = {k: float(v) for k, v in (getattr(yolo.trainer, "metrics", None) or {}).items()
             if isinstance(v, (int, float, np.floating))}
    return {"model": model, "weights": str(source), "seconds": seconds, "epochs": epochs, "final": final,
            "history": history, "args": {k: v for k, v in args.items() if k not in ("project", "name")}}


def _resumable(last: Path) -> bool:
    """Whether an Ultralytics checkpoint is mid-run (a finished run's has its optimiser stripped)."""
    from ultralytics.utils.patches import torch_load

    try:
        ckpt = torch_load(last, map_location="cpu")  # Ultralytics' own pickled checkpoint, written by this run
    except Exception as err:  # a checkpoint cut off mid-write: start over
        log.warning("cannot read %s (%s); training from the start", last, err)
        return False
    return ckpt.get("optimizer") is not None and ckpt.get("epoch", -1) >= 0


def _skip_amp_download() -> None:
    import ultralytics.engine.trainer as trainer_module

    def trust_amp(model) -> bool:
        # Ultralytics' check compares against downloaded yolo26n weights; offline, trust the GPU's AMP.
        return next(model.parameters()).device.type == "cuda"

    trainer_module.check_amp = trust_amp


# ---- ResNet-18 on the detected crops (Sec. 4.5.2) --------------------------------------------


def expand_boxes(boxes: np.ndarray, context: float) -> np.ndarray:
    """Boxes grown by ``context`` of their width and height on every side.

    Crops are these boxes resized to squares: little background gets in, so a
    classifier trained on a few videos cannot name trucks by the lot around them.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    dw, dh = (b[:, 2] - b[:, 0]) * context, (b[:, 3] - b[:, 1]) * context
    return np.stack([b[:, 0] - dw, b[:, 1] - dh, b[:, 2] + dw, b[:, 3] + dh], 1)


def crop_resize(frames: np.ndarray, frame_index: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear crops ``(n, 3, size, size)`` uint8 of grey frames (outside the frame reads 0), grey repeated to RGB."""
    from torchvision.ops import roi_align

    if len(boxes) == 0:
        return np.zeros((0, 3, size, size), np.uint8)
    x = torch.from_numpy(np.ascontiguousarray(frames)).float()[:, None]
    rois = torch.cat([torch.tensor(np.asarray(frame_index), dtype=torch.float32)[:, None],
                      torch.tensor(np.asarray(boxes), dtype=torch.float32)], 1)
    out = roi_align(x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return out.round().clamp(0, 255).to(torch.uint8).repeat(1, 3, 1, 1).numpy()


def jitter_boxes(boxes: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Shift each box by up to ``amount`` of its size and rescale it by up to ``1 +- amount``: detector-like boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx = (b[:, 0] + b[:, 2]) / 2 + rng.uniform(-amount, amount, len(b)) * w
    cy = (b[:, 1] + b[:, 3]) / 2 + rng.uniform(-amount, amount, len(b)) * h
    s = 1 + rng.uniform(-amount, amount, len(b))
    return np.stack([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2], 1)


def build_resnet18(num_classes: int, weights: str | None = None) -> torch.nn.Module:
    """torchvision's ResNet-18 (He et al. 2016) with a ``num_classes`` head; ``weights`` a local state-dict file or None."""
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, _ = net.load_state_dict(state, strict=False)
        log.info("ResNet-18 initialised from %s (missing: %s)", weights, missing)
    net.fc = torch.nn.Linear(net.fc.in_features, num_classes)
    return net


def classifier_crops(
    videos_root, *, splits: list[str], fractions: list[float], frames_per_code: int, exposure: int, raw_stride: int,
    val_fraction: float, crop_size: int, context: float, jitter: float, seed: int,
) -> dict[str, np.ndarray]:
    """Training and held-out crops of every labelled target: raw frames and coded frames at ``fractions``.

    Training crops use jittered boxes (the classifier sees detector boxes at test time);
    held-out crops (the tail of each video, as for the detector) use the true boxes.
    """
    manifest = read_manifest(videos_root)
    rng = np.random.default_rng(derived_seed(seed, "crops", *splits))
    parts = {"train": ([], []), "val": ([], [])}
    for name in [n for s in splits for n in videos_in(manifest, s)]:
        video = read_video(videos_root, name, manifest)
        cut = _split_point(len(video.frames), val_fraction)
        sources = [(video.frames, video.targets, 1, np.arange(len(video.frames)) % raw_stride == 0)]
        for fraction in fractions:
            coded = code_video(video, fraction, frames_per_code=frames_per_code, exposure=exposure, seed=seed)
            sources.append((coded.frames, coded.targets, frames_per_code, np.ones(len(coded.frames), bool)))
        for frames, targets, span, use in sources:
            keep = use[targets.frame]
            idx, box, cls = targets.frame[keep], targets.box[keep], targets.cls[keep]
            is_train = (idx + 1) * span <= cut
            for split, sel in (("train", is_train), ("val", ~is_train)):
                b = box[sel]
                if split == "train":
                    b = jitter_boxes(b, rng, jitter)
                parts[split][0].append(crop_resize(frames, idx[sel], expand_boxes(b, context), crop_size))
                parts[split][1].append(cls[sel])
    out = {}
    for split, (xs, ys) in parts.items():
        out[f"x_{split}"] = np.concatenate(xs) if xs else np.zeros((0, 3, crop_size, crop_size), np.uint8)
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


def train_crop_classifier(
    videos_root, *, splits: list[str], crops: dict, train: dict, seed: int, device: torch.device, model_path,
    metrics_path, weights: str | None = None, init=None,
) -> dict:
    """Train the ResNet-18 that names the detected trucks (Sec. 4.5.2) and save it with its metrics.

    ``crops`` holds the crop settings (fractions, size, context, jitter, ...) passed to
    :func:`classifier_crops`; ``init`` a saved classifier to fine-tune (the
    multi-target stage); ``weights`` a local ImageNet state dict (the thesis started
    from ImageNet; none exists offline).
    """
    from landscapes.pipeline.io import load_checkpoint, save_checkpoint
    from landscapes.core.train import Normalise, Optimiser, channel_stats, evaluate, train_classifier

    data = classifier_crops(videos_root, splits=splits, seed=seed, **crops)
    classes = [str(c) for c in data["classes"]]
    x, y = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    if len(x) % train["batch_size"] == 1:
        # BatchNorm cannot train on a last batch of one crop at 1x1 resolution; drop that crop
        x, y = x[:-1], y[:-1]
    torch.manual_seed(seed)
    if init is not None:
        state = load_checkpoint(init, map_location="cpu")
        mean, std = state["mean"], state["std"]
        net = build_resnet18(len(classes))
        model = torch.nn.Sequential(Normalise(mean, std), net)
        model.load_state_dict(state["state_dict"])
    else:
        mean, std = channel_stats(x)
        model = torch.nn.Sequential(Normalise(mean, std), build_resnet18(len(classes), weights))
    model = model.to(device)
    result = train_classifier(model, x, y, epochs=train["epochs"], batch_size=train["batch_size"],
                              optimiser=Optimiser(**train["optimiser"]), seed=seed, transform=_crop_augment,
                              progress=False)
    val_loss, val_acc = (evaluate(model, torch.from_numpy(data["x_val"]), torch.from_numpy(data["y_val"]))
                         if len(data["y_val"]) else (math.nan, math.nan))
    save_checkpoint(model_path, {"state_dict": model.state_dict(), "classes": classes, "mean": mean, "std": std,
                                 "crop_size": crops["crop_size"], "context": crops["context"]})
    metrics = {"classes": classes, "train_crops": int(len(x)), "heldout_crops": int(len(data["y_val"])),
               "train_accuracy": result.train_accuracy, "heldout_accuracy": val_acc, "heldout_loss": val_loss,
               "seconds": result.seconds, "history": result.history, "device": str(device),
               "init": str(init) if init else None}
    save_json(metrics_path, metrics)
    log.info("ResNet-18: train accuracy %.3f, held-out accuracy %.3f on %d crops", result.train_accuracy, val_acc,
             len(data["y_val"]))
    return metrics


def load_crop_classifier(path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    from landscapes.pipeline.io import load_checkpoint
    from landscapes.core.train import Normalise

    state = load_checkpoint(path, map_location=device)
    model = torch.nn.Sequential(Normalise(state["mean"], state["std"]), build_resnet18(len(state["classes"])))
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval(), state


@torch.no_grad()
def classify_crops(model: torch.nn.Module, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
    device = next(model.parameters()).device
    out = [model(torch.from_numpy(crops[i : i + batch_size]).to(device).float() / 255.0).argmax(1).cpu()
           for i in range(0, len(crops), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


# ---- tracking by detection and the per-frame records (Sec. 4.5.2-4.5.3) ---------------------


def _tracker(name: str):
    from ultralytics.trackers.track import TRACKER_MAP
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    cfg = IterableSimpleNamespace(**YAML.load(check_yaml(name)))
    return TRACKER_MAP[cfg.tracker_type](args=cfg)


def detect_and_track(yolo, frames: np.ndarray, *, imgsz: int, conf: float, iou: float, device: str,
                     tracker: str) -> pd.DataFrame:
    """YOLO on every frame, then Ultralytics' tracker links the detections into tracks.

    Returns one row per detection: ``frame, x0, y0, x1, y1, conf, track`` (``track`` is
    -1 for a detection the tracker did not confirm). Detections come straight from the
    detector, so detection metrics do not depend on the tracker's thresholds.
    """
    track_state = _tracker(tracker)  # its track_buffer counts coded frames
    rows = []
    for t, frame in enumerate(frames):
        bgr = np.repeat(frame[:, :, None], 3, axis=2)
        result = yolo.predict(bgr, imgsz=imgsz, conf=conf, iou=iou, device=device, verbose=False)[0]
        boxes = result.boxes.cpu().numpy()
        ids = np.full(len(boxes), -1, np.int64)
        if len(boxes):
            tracked = track_state.update(boxes, bgr)
            for row in np.asarray(tracked).reshape(-1, 8):
                ids[int(row[7])] = int(row[4])
        else:
            track_state.update(boxes, bgr)
        for (x0, y0, x1, y1), c, k in zip(boxes.xyxy, boxes.conf, ids):
            rows.append((t, float(x0), float(y0), float(x1), float(y1), float(c), int(k)))
    return pd.DataFrame(rows, columns=["frame", "x0", "y0", "x1", "y1", "conf", "track"])


RECORD_COLUMNS = ["video", "fraction", "frame", "kind", "true_class", "target", "detected", "conf", "dice", "centroid",
                  "pred_class", "track", "track_class", "tx0", "ty0", "tx1", "ty1", "dx0", "dy0", "dx1", "dy1"]


def frame_records(coded: CodedVideo, detections: pd.DataFrame, predicted: np.ndarray, classes: list[str], *,
                  min_iou: float) -> pd.DataFrame:
    """One row per (coded frame, target) plus one per unmatched detection ('false_positive').

    ``predicted`` is the classifier's class index for every detection row. A target is
    detected in a frame when a detection is matched to it (:func:`match_boxes`); DICE,
    centroid distance and predicted class are those of the matched detection.
    ``track_class`` is the majority class over the detection's track (tracking's gain).
    """
    det = detections.assign(pred=predicted)
    votes = det[det.track >= 0].groupby("track")["pred"].agg(lambda s: int(s.value_counts().idxmax())).to_dict()
    rows = []
    for k in range(len(coded.frames)):
        truth = coded.targets.at(k)
        d = det[det.frame == k]
        dboxes = d[["x0", "y0", "x1", "y1"]].to_numpy()
        matches = dict(match_boxes(truth.box, dboxes, min_iou=min_iou))
        for i in range(len(truth)):
            base = {"video": coded.name, "fraction": coded.fraction, "frame": k, "kind": "target",
                    "true_class": classes[truth.cls[i]], "target": int(truth.track[i]),
                    "tx0": truth.box[i, 0], "ty0": truth.box[i, 1], "tx1": truth.box[i, 2], "ty1": truth.box[i, 3]}
            if i in matches:
                r = d.iloc[matches[i]]
                box = dboxes[matches[i]][None]
                track = int(r.track)
                base.update(detected=True, conf=float(r.conf), dice=float(box_dice(truth.box[i][None], box)[0]),
                            centroid=float(centroid_distance(truth.box[i][None], box)[0]),
                            pred_class=classes[int(r.pred)], track=track,
                            track_class=classes[votes.get(track, int(r.pred))],
                            dx0=box[0, 0], dy0=box[0, 1], dx1=box[0, 2], dy1=box[0, 3])
            else:
                base.update(detected=False, track=-1)
            rows.append(base)
        matched = set(matches.values())
        for j in range(len(d)):
            if j not in matched:
                r = d.iloc[j]
                rows.append({"video": coded.name, "fraction": coded.fraction, "frame": k, "kind": "false_positive",
                             "detected": True, "conf": float(r.conf), "pred_class": classes[int(r.pred)],
                             "track": int(r.track), "dx0": r.x0, "dy0": r.y0, "dx1": r.x1, "dy1": r.y1})
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def evaluate_detection(
    videos_root, *, split: str, fraction: float, detector, classifier, frames_per_code: int, exposure: int, seed: int,
    imgsz: int, conf: float, iou: float, min_iou: float, tracker: str, device: torch.device, out_csv,
) -> pd.DataFrame:
    """Code every video of ``split`` at ``fraction``, detect, track, classify the crops and write the records."""
    from ultralytics import YOLO

    manifest = read_manifest(videos_root)
    classes = list(manifest["classes"])
    yolo_dev = yolo_device(device)
    cls_model, cls_state = load_crop_classifier(classifier, device)
    parts = []
    for name in videos_in(manifest, split):
        video = read_video(videos_root, name, manifest)
        coded = code_video(video, fraction, frames_per_code=frames_per_code, exposure=exposure, seed=seed)
        yolo = YOLO(str(detector))  # a fresh model per video: nothing carries over between videos
        dets = detect_and_track(yolo, coded.frames, imgsz=imgsz, conf=conf, iou=iou, device=yolo_dev, tracker=tracker)
        boxes = expand_boxes(dets[["x0", "y0", "x1", "y1"]].to_numpy(), cls_state["context"])
        crops = crop_resize(coded.frames, dets["frame"].to_numpy(), boxes, cls_state["crop_size"])
        predicted = classify_crops(cls_model, crops)
        parts.append(frame_records(coded, dets, predicted, classes, min_iou=min_iou))
    records = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RECORD_COLUMNS)
    with atomic_path(out_csv) as tmp:
        records.to_csv(tmp, index=False)
    targets = records[records.kind == "target"]
    log.info("fraction %s on %s: detection rate %.3f over %d (frame, target) pairs", fraction_label(fraction), split,
             targets.detected.mean() if len(targets) else math.nan, len(targets))
    return records


# ---- Tables 4.2-4.4 ----------------------------------------------------------------------------


def _targets(records: pd.DataFrame) -> pd.DataFrame:
    t = records[records["kind"] == "target"].copy()
    t["detected"] = t["detected"].astype(bool)
    return t


def _thesis_column(values: dict, fraction: float, k: int) -> float:
    row = values.get(round(float(fraction), 6))
    return float(row[k]) if row is not None else math.nan


def _fraction_rows(records: pd.DataFrame) -> list[float]:
    return sorted(set(float(f) for f in records["fraction"]))


def table_4_2(records: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Table 4.2: detection rate per class, the fraction of (coded frame, target) pairs with a matched detection."""
    t = _targets(records)
    rows = []
    for f in _fraction_rows(t):
        row = {"coded aperture fraction": percent_label(f)}
        for cls in classes:
            sel = t[(t.fraction == f) & (t.true_class == cls)]
            row[cls.capitalize()] = sel.detected.mean() if len(sel) else math.nan
            if cls in THESIS_CLASSES:
                row[f"{cls.capitalize()} (thesis)"] = _thesis_column(THESIS_TABLE_4_2, f, THESIS_CLASSES.index(cls))
        row["frames"] = int((t.fraction == f).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def table_4_3(records: pd.DataFrame) -> pd.DataFrame:
    """Table 4.3: mean DICE and centroid distance (pixels) over detected (frame, target) pairs."""
    t = _targets(records)
    rows = []
    for f in _fraction_rows(t):
        sel = t[(t.fraction == f) & t.detected]
        rows.append({"coded aperture fraction": percent_label(f), "DICE": sel.dice.mean() if len(sel) else math.nan,
                     "DICE (thesis)": _thesis_column(THESIS_TABLE_4_3, f, 0),
                     "centroid distance (px)": sel.centroid.mean() if len(sel) else math.nan,
                     "centroid distance (px, thesis)": _thesis_column(THESIS_TABLE_4_3, f, 1),
                     "detected frames": int(len(sel))})
    return pd.DataFrame(rows)


def table_4_4(records: pd.DataFrame, classes: list[str], *, column: str = "pred_class") -> pd.DataFrame:
    """Table 4.4: classification rate per class, correct classes over detected (frame, target) pairs.

    The thesis's Table 4.4 exceeds its detection rates at 6.25%, so its rate is taken
    over frames with a detection; ``column='track_class'`` scores the track-majority class.
    """
    t = _targets(records)
    rows = []
    for f in _fraction_rows(t):
        row = {"coded aperture fraction": percent_label(f)}
        for cls in classes:
            sel = t[(t.fraction == f) & (t.true_class == cls) & t.detected]
            row[cls.capitalize()] = (sel[column] == cls).mean() if len(sel) else math.nan
            if cls in THESIS_CLASSES and column == "pred_class":
                row[f"{cls.capitalize()} (thesis)"] = _thesis_column(THESIS_TABLE_4_4, f, THESIS_CLASSES.index(cls))
        rows.append(row)
    return pd.DataFrame(rows)


def table_multi_target(records: pd.DataFrame) -> pd.DataFrame:
    """The multi-target test video after fine-tuning: detection rate, DICE, centroid, classification per fraction."""
    t = _targets(records)
    rows = []
    for f in _fraction_rows(t):
        sel = t[t.fraction == f]
        det = sel[sel.detected]
        fp = records[(records.kind == "false_positive") & (records.fraction == f)]
        rows.append({"coded aperture fraction": percent_label(f), "detection rate": sel.detected.mean(),
                     "DICE": det.dice.mean() if len(det) else math.nan,
                     "centroid distance (px)": det.centroid.mean() if len(det) else math.nan,
                     "classification rate": (det.pred_class == det.true_class).mean() if len(det) else math.nan,
                     "classification rate (track vote)": (det.track_class == det.true_class).mean() if len(det) else math.nan,
                     "false positives per frame": len(fp) / max(1, sel.frame.nunique()),
                     "targets": int(len(sel))})
    return pd.DataFrame(rows)


# ---- figures -------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_figure_4_3(video: Video, path, *, fraction: float, frames_per_code: int, exposure: int, seed: int,
                    pixels: int = 24) -> None:
    """Figure 4.3: conventional frames vs pixel-wise coded exposure, drawn from a real ``pce_encode`` mask.

    (a) a conventional camera exposes every pixel in every frame; (b) PCE's S(m, n, t)
    for ``pixels`` pixels of one row: active pixels integrate ``exposure`` frames from
    their own start; (c) the coded frame Y = sum_t S X of that clip.
    """
    plt = _pyplot()
    clip = video.frames[:frames_per_code]
    coded, mask = pce_encode(clip, fraction, exposure=exposure, seed=seed, return_mask=True)
    row = mask.shape[1] // 2
    strip = mask[:, row, :pixels].T.astype(float)  # (pixels, T)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    axes[0].imshow(np.ones_like(strip), cmap="Greys", vmin=0, vmax=1.2, aspect="auto", interpolation="nearest")
    axes[0].set_title(f"(a) conventional: {frames_per_code} frames,\nevery pixel exposed (dark) in every frame")
    axes[1].imshow(strip, cmap="Greys", vmin=0, vmax=1.2, aspect="auto", interpolation="nearest")
    axes[1].set_title(f"(b) PCE exposure S(m, n, t): {percent_label(fraction)} of pixels\nexposed (dark) for {exposure} frames each")
    for ax in axes[:2]:
        ax.set_xlabel("frame t")
        ax.set_ylabel(f"pixel n (row {row})")
        ax.set_xticks(range(frames_per_code))
        for t in range(frames_per_code + 1):
            ax.axvline(t - 0.5, color="tab:blue", lw=0.5)
    axes[2].imshow(coded / exposure, cmap="gray", vmin=0, vmax=255)
    axes[2].axhline(row, color="tab:red", lw=0.8)
    axes[2].set_title("(c) one motion-coded frame Y = sum_t S X")
    axes[2].axis("off")
    fig.suptitle("Figure 4.3: conventional camera vs pixel-wise coded exposure (PCE)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_figure_4_4(video: Video, path, *, fractions: list[float], frames_per_code: int, exposure: int, seed: int,
                    clip: int | None = None) -> None:
    """Figure 4.4: a raw frame and the coded frames of its clip at each fraction (50/25/12.5% in the thesis)."""
    plt = _pyplot()
    clips = len(video.frames) // frames_per_code
    clip = clips // 2 if clip is None else clip
    t = clip * frames_per_code
    fig, axes = plt.subplots(1, 1 + len(fractions), figsize=(3.2 * (1 + len(fractions)), 3.2))
    axes[0].imshow(video.frames[t], cmap="gray", vmin=0, vmax=255)
    axes[0].set_title("(a) sample frame")
    for k, (ax, f) in enumerate(zip(axes[1:], fractions)):
        coded = code_video(video, f, frames_per_code=frames_per_code, exposure=exposure, seed=seed)
        ax.imshow(coded.frames[clip], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"({chr(98 + k)}) {percent_label(f)} PCE")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"Figure 4.4: a frame of {video.name} and its PCE measurements")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pick_figure_frame(records: pd.DataFrame, video: str) -> int:
    """The coded frame of ``video`` detected at the most fractions (ties: the middle one)."""
    t = _targets(records)
    t = t[t.video == video]
    score = t.groupby("frame")["detected"].sum()
    best = score[score == score.max()].index.to_numpy()
    return int(best[len(best) // 2]) if len(best) else 0


def plot_figure_4_5(videos_root, records: dict[float, pd.DataFrame], path, *, video: str, frames_per_code: int,
                    exposure: int, seed: int) -> None:
    """Figure 4.5: a test frame at each fraction with the detections and their predicted classes (ground truth dashed)."""
    plt = _pyplot()
    fractions = sorted(records, reverse=True)
    raw = read_video(videos_root, video)
    frame = pick_figure_frame(pd.concat(records.values()), video)
    fig, axes = plt.subplots(1, len(fractions), figsize=(3.6 * len(fractions), 3.4), squeeze=False)
    for k, (ax, f) in enumerate(zip(axes[0], fractions)):
        coded = code_video(raw, f, frames_per_code=frames_per_code, exposure=exposure, seed=seed)
        ax.imshow(coded.frames[frame], cmap="gray", vmin=0, vmax=255)
        rec = records[f]
        rec = rec[(rec.video == video) & (rec.frame == frame)]
        for _, r in rec.iterrows():
            if r.kind == "target":
                ax.add_patch(plt.Rectangle((r.tx0 - 0.5, r.ty0 - 0.5), r.tx1 - r.tx0, r.ty1 - r.ty0, fill=False,
                                           ec="tab:red", ls="--", lw=1))
            if bool(r.detected):
                ax.add_patch(plt.Rectangle((r.dx0 - 0.5, r.dy0 - 0.5), r.dx1 - r.dx0, r.dy1 - r.dy0, fill=False,
                                           ec="lime", lw=1.5))
                ax.text(r.dx0, r.dy0 - 1.5, f"{r.pred_class} {r.conf:.2f}", color="lime", fontsize=8,
                        bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "lw": 0})
        ax.set_title(f"({chr(97 + k)}) {percent_label(f)} PCE measurements")
        ax.axis("off")
    fig.suptitle(f"Figure 4.5: detection and classification, {video} coded frame {frame} "
                 "(green: detection and predicted class; red dashed: ground truth)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- Sec. 4.4.2: detection under partial observation (Figure 4.2c) --------------------------------


def build_partial_detection_data(out_dir, *, source: str, num_train: int, num_val: int, image_size: int,
                                 max_objects: int, truck_length: list[float], seed: int, root=None) -> dict:
    """The data of Fig. 4.2c: synthetic multi-object scenes (offline) or Pascal VOC 2007 (``source='voc2007'``).

    Images are stored clean; partial observation is applied as they are loaded
    (:func:`observe_loaded_images`), so no observed copies are written to disk.
    """
    from landscapes.ch4.detection.scenes import CLASSES, still_scenes

    out_dir = Path(out_dir)
    if source == "voc2007":
        return _prepare_voc2007(out_dir, root)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    counts = {}
    for split, n, offset in (("train", num_train, 0), ("val", num_val, 1)):
        images, labels = still_scenes(n, height=image_size, width=image_size, max_objects=max_objects,
                                      truck_length=tuple(truck_length), seed=derived_seed(seed, "stills", split))
        for i, (image, tg) in enumerate(zip(images, labels)):
            write_yolo_sample(out_dir, split, f"{split}{i:06d}", image, tg.box, tg.cls)
        counts[split] = int(n)
        counts[f"{split}_objects"] = int(sum(len(t) for t in labels))
    write_data_yaml(out_dir / "data.yaml", out_dir, train="images/train", val="images/val", names=list(CLASSES))
    save_json(out_dir / "summary.json", {"source": source, **counts})
    return counts


def _prepare_voc2007(out_dir: Path, root) -> dict:
    """Pascal VOC 2007 through Ultralytics' own VOC.yaml: its download/convert script, then VOC 2007 splits only.

    The script fetches VOC 2007 trainval/test (and 2012, which it also converts) into
    ``root``; training uses train2007 + val2007 (5011 images) and testing test2007
    (4952 images), as in Sec. 4.4.2. This needs the network (``paper`` preset).
    """
    from ultralytics.utils import YAML
    from ultralytics.utils.checks import check_yaml

    voc = YAML.load(check_yaml("VOC.yaml"))
    root = Path(root or "data/raw").resolve() / "VOC"
    voc["path"] = str(root)
    if not (root / "images" / "test2007").exists():
        log.info("downloading Pascal VOC through Ultralytics' VOC.yaml into %s", root)
        exec(voc["download"], {"yaml": voc})  # Ultralytics' dataset definition ships this script
    out_dir.mkdir(parents=True, exist_ok=True)
    write_data_yaml(out_dir / "data.yaml", root, train=["images/train2007", "images/val2007"], val="images/test2007",
                    names=list(voc["names"].values()))
    counts = {"source": "voc2007", "train": len(list((root / "images/train2007").glob("*.jpg"))) +
              len(list((root / "images/val2007").glob("*.jpg"))), "val": len(list((root / "images/test2007").glob("*.jpg")))}
    save_json(out_dir / "summary.json", counts)
    return counts


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


def partial_trainer(train_ratios: list[float], seed: int):
    """A DetectionTrainer whose training images are observed at a ratio drawn from {1} + ``train_ratios``."""
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
    from ultralytics.models.yolo.detect import DetectionValidator

    class PartialObservationValidator(DetectionValidator):
        def build_dataset(self, img_path, mode="val", batch=None):
            return observe_loaded_images(super().build_dataset(img_path, mode, batch), fixed_ratio=ratio, seed=seed)

    return PartialObservationValidator


def partial_map50(weights, data_yaml, *, ratios: list[float], imgsz: int, batch: int, seed: int, device: torch.device,
                  run_dir) -> list[dict]:
    """mAP50 (and mAP50-95) of one detector on the test images observed at each ratio (Fig. 4.2c)."""
    from ultralytics import YOLO

    records = []
    for ratio in ratios:
        mask_seed = derived_seed(seed, "partial-test", fraction_label(ratio))
        t0 = time.perf_counter()
        metrics = YOLO(str(weights)).val(
            validator=partial_validator(ratio, mask_seed), data=str(Path(data_yaml).resolve()), imgsz=imgsz,
            batch=batch, device=yolo_device(device), workers=0, plots=False, verbose=False,
            project=str(Path(run_dir).resolve()), name=f"ratio{fraction_label(ratio)}", exist_ok=True)
        records.append({"ratio": float(ratio), "map50": float(metrics.box.map50), "map50_95": float(metrics.box.map),
                        "seconds": time.perf_counter() - t0})
        log.info("ratio %s: mAP50 %.4f", fraction_label(ratio), records[-1]["map50"])
    return records


PARTIAL_METHODS = {"full": "YOLO (full images)", "ours": "YOLO-Ours (full + partial)"}


def table_partial_map(results: dict[str, list[dict]]) -> pd.DataFrame:
    """mAP50 per method (rows) and observation ratio (columns): the numbers behind Fig. 4.2c."""
    rows = []
    for method, records in results.items():
        row = {"method": PARTIAL_METHODS.get(method, method)}
        row.update({f"{r['ratio']:g}": r["map50"] for r in sorted(records, key=lambda r: -r["ratio"])})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_figure_4_2c(table: pd.DataFrame, path) -> None:
    """Figure 4.2c: mAP50 against the test observation ratio, one line per detector."""
    from landscapes.ch4.partial.classification import plot_against_ratio

    plot_against_ratio(table, [c for c in table.columns if c != "method"], path, ylabel="mAP50",
                       title="Figure 4.2c: detection under partial observation")  # fmt: skip
