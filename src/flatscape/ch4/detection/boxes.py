"""Box geometry of Sec. 4.5.3's metrics: areas, IoU, DICE, centroid distance, matching.

Boxes are ``(x0, y0, x1, y1)`` in continuous pixel coordinates (docs/video_format.md).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def _boxes(boxes) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def box_area(boxes: np.ndarray) -> np.ndarray:
    b = _boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def box_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas ``(len(a), len(b))``."""
    a, b = _boxes(a), _boxes(b)
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
    a, b = _boxes(a), _boxes(b)
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    total = box_area(a) + box_area(b)
    return np.where(total > 0, 2 * inter / np.where(total > 0, total, 1), 0.0)


def centroid_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """l2 distance in pixels between the centres of paired boxes (Sec. 4.5.3), row by row."""
    a, b = _boxes(a), _boxes(b)
    ca = np.stack([(a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2], 1)
    cb = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], 1)
    return np.linalg.norm(ca - cb, axis=1)


def match_boxes(truth: np.ndarray, detected: np.ndarray, *, min_iou: float) -> list[tuple[int, int]]:
    """One-to-one matching of ground-truth to detected boxes maximising total IoU (Hungarian).

    Pairs with IoU below ``min_iou`` (or no overlap at all) are not matches: a box
    elsewhere in the frame is not a detection of this target.
    """
    if len(truth) == 0 or len(detected) == 0:
        return []
    iou = box_iou(truth, detected)
    rows, cols = linear_sum_assignment(-iou)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if iou[i, j] > 0 and iou[i, j] >= min_iou]


def expand_boxes(boxes: np.ndarray, context: float) -> np.ndarray:
    """Boxes grown by ``context`` of their width and height on every side.

    Crops are these boxes resized to squares: little background gets in, so a
    classifier trained on a few videos cannot name trucks by the lot around them.
    """
    b = _boxes(boxes)
    dw, dh = (b[:, 2] - b[:, 0]) * context, (b[:, 3] - b[:, 1]) * context
    return np.stack([b[:, 0] - dw, b[:, 1] - dh, b[:, 2] + dw, b[:, 3] + dh], 1)


def jitter_boxes(boxes: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Shift each box by up to ``amount`` of its size and rescale it by up to ``1 +- amount``: detector-like boxes."""
    b = _boxes(boxes)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx = (b[:, 0] + b[:, 2]) / 2 + rng.uniform(-amount, amount, len(b)) * w
    cy = (b[:, 1] + b[:, 3]) / 2 + rng.uniform(-amount, amount, len(b)) * h
    s = 1 + rng.uniform(-amount, amount, len(b))
    return np.stack([cx - w * s / 2, cy - h * s / 2, cx + w * s / 2, cy + h * s / 2], 1)
