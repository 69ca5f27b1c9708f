"""Tracking by detection on coded frames and the per-frame records Tables 4.2-4.4 are made of (Sec. 4.5.2-4.5.3)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from flatscape.ch4.detection.boxes import box_dice, centroid_distance, expand_boxes, match_boxes
from flatscape.ch4.detection.coding import CodedVideo, code_video
from flatscape.ch4.detection.crops import classify_crops, crop_resize
from flatscape.ch4.detection.video_io import read_manifest, read_video, videos_in
from flatscape.ch4.detection.yolo import ultralytics_offline, yolo_device
from flatscape.core.models import load
from flatscape.pipeline.io import atomic_path
from flatscape.pipeline.naming import fraction_label
from flatscape.pipeline.runtime import select_device

log = logging.getLogger(__name__)

RECORD_COLUMNS = ["video", "fraction", "frame", "kind", "true_class", "target", "detected", "conf", "dice", "centroid",
                  "pred_class", "track", "track_class", "tx0", "ty0", "tx1", "ty1", "dx0", "dy0", "dx1", "dy1"]  # fmt: skip


@dataclass(frozen=True)
class EvaluationJob:
    """The ``evaluate_detection`` job: one test split coded at each of ``fractions``, detected, tracked and classified.

    ``crop_size`` and ``context`` are the classifier's crop geometry; ``match_iou`` the
    least IoU for a detection to count for a target. All fractions are one job so that
    Ultralytics, the two networks and the videos are loaded once (issue 17: the start-up
    was about 4 of each per-fraction job's 6 s on 2 CPU cores).
    """

    split: str
    fractions: tuple[float, ...]
    frames_per_code: int
    exposure: int
    imgsz: int
    conf: float
    iou: float
    match_iou: float
    tracker: str
    crop_size: int
    context: float
    seed: int
    device: str


def _tracker(name: str):
    # Imported here: Ultralytics must be configured by ultralytics_offline() first.
    from ultralytics.trackers.track import TRACKER_MAP
    from ultralytics.utils import YAML, IterableSimpleNamespace
    from ultralytics.utils.checks import check_yaml

    cfg = IterableSimpleNamespace(**YAML.load(check_yaml(name)))
    return TRACKER_MAP[cfg.tracker_type](args=cfg)


def detect_and_track(yolo, frames: np.ndarray, *, imgsz: int, conf: float, iou: float, device: str,
                     tracker: str) -> pd.DataFrame:  # fmt: skip
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


def frame_records(coded: CodedVideo, detections: pd.DataFrame, predicted: np.ndarray, classes: list[str], *,
                  min_iou: float) -> pd.DataFrame:  # fmt: skip
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


def evaluate_detection(videos_root, job: EvaluationJob, *, detector, classifier, out_csvs: Sequence, config_dir,
                       threads: int) -> list[pd.DataFrame]:  # fmt: skip
    """Code every video of ``job.split`` at each fraction, detect, track, classify the crops and write the records.

    ``out_csvs[i]`` receives the records of ``job.fractions[i]``, each written as soon as
    its fraction is done. A video is coded, detected and classified independently at
    each fraction (a fresh detector per video and fraction), so a fraction's records are
    those a job of that fraction alone would write.
    """
    if len(out_csvs) != len(job.fractions):
        raise ValueError(f"{len(job.fractions)} fractions but {len(out_csvs)} output files")
    ultralytics = ultralytics_offline(config_dir, threads=threads)
    device = select_device(job.device)
    manifest = read_manifest(videos_root)
    classes = list(manifest["classes"])
    yolo_dev = yolo_device(device)
    cls_model, _ = load(classifier, device)
    names = videos_in(manifest, job.split)
    videos = {name: read_video(videos_root, name, manifest) for name in names}
    out = []
    for fraction, out_csv in zip(job.fractions, out_csvs):
        parts = []
        for name in names:
            coded = code_video(videos[name], fraction, frames_per_code=job.frames_per_code, exposure=job.exposure,
                               seed=job.seed)  # fmt: skip
            yolo = ultralytics.YOLO(str(detector))  # a fresh model per video: nothing carries over between videos
            dets = detect_and_track(yolo, coded.frames, imgsz=job.imgsz, conf=job.conf, iou=job.iou, device=yolo_dev,
                                    tracker=job.tracker)  # fmt: skip
            boxes = expand_boxes(dets[["x0", "y0", "x1", "y1"]].to_numpy(), job.context)
            crops = crop_resize(coded.frames, dets["frame"].to_numpy(), boxes, job.crop_size)
            predicted = classify_crops(cls_model, crops)
            parts.append(frame_records(coded, dets, predicted, classes, min_iou=job.match_iou))
        records = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=RECORD_COLUMNS)
        with atomic_path(out_csv) as tmp:
            records.to_csv(tmp, index=False)
        targets = records[records.kind == "target"]
        log.info("fraction %s on %s: detection rate %.3f over %d (frame, target) pairs", fraction_label(fraction),
                 job.split, targets.detected.mean() if len(targets) else math.nan, len(targets))  # fmt: skip
        out.append(records)
    return out
