"""Data set acquisition: one cached, standardised artifact per data set.

Every data set the thesis uses (scikit-learn's digits for the offline preset; MNIST,
KMNIST and Fashion-MNIST for Chapter 3's flatness experiments; CIFAR-10 for Chapter
3 and Chapter 4's partial-observation classifiers) is turned into the same ``.npz``:
``x_train``/``x_test`` as ``(N, C, H, W)`` uint8, ``y_train``/``y_test`` as int64
class indices, ``classes`` (names in label order) and ``name``.

Sources (``materialise(..., source=...)``):

* ``download``: torchvision's own download path (``download=True`` into ``root``,
  md5-checked by torchvision); files already in ``root`` are not fetched again.
* ``mirror``: a local folder in torchvision's raw layout (the four IDX files, ``.gz``
  or not, for the MNIST family; the python tarball or ``cifar-10-batches-py`` for
  CIFAR-10), verified against a ``SHA256SUMS``/``SHA256SUMS.uncompressed`` beside it,
  unpacked under ``root`` and read with torchvision (``download=False``).
* ``imagefolder_tar``: CIFAR-10 as ``train/<class>/*`` and ``test/<class>/*`` images
  in a ``.tar.gz``, decoded with PIL while streaming the archive.
* ``sklearn``: scikit-learn's bundled 8x8 digits with a stratified, seeded split.

A damaged input (truncated gzip, bad IDX header, checksum mismatch, undecodable
image) raises ``DatasetError`` naming the file before the artifact is written; the
artifact itself is written atomically, and ``load`` turns a damaged artifact into
``ArtifactError`` naming it."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flatscape.core.datasets.checks import (  # noqa: F401 (the package's public names)
    _ARRAY_KEYS,
    _NEEDS_PATH,
    _NEEDS_ROOT,
    CIFAR10_CLASSES,
    DATASET_NAMES,
    DIGITS_TEST_FRACTION,
    SOURCES,
    VALID_SOURCES,
    DatasetError,
    _array_problems,
    check_request,
)
from flatscape.core.datasets.mirrors import _from_mirror
from flatscape.core.datasets.readers import (
    _from_imagefolder_tar,
    _from_sklearn_digits,
    _from_torchvision,
)
from flatscape.core.datasets.staging import (  # noqa: F401
    STAGE_HINT,
    check_staged,
    check_staged_voc,
    stage,
)
from flatscape.pipeline.io import ArtifactError, load_arrays, save_arrays

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A standardised data set: uint8 images ``(N, C, H, W)`` and int64 labels."""

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {len(self.classes)} classes, train {self.x_train.shape}, "
            f"test {self.x_test.shape})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]


def materialise(
    name: str,
    out_path: str | os.PathLike,
    *,
    source: str,
    root: str | os.PathLike | None,
    path: str | os.PathLike | None = None,
    seed: int = 0,
    staged: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write data set ``name`` from ``source`` as a standardised ``.npz`` at ``out_path``.

    ``root`` is torchvision's cache folder (raw downloads and unpacked mirrors live
    there and are reused); ``path`` is the mirror folder or ``.tar.gz``; ``seed`` fixes
    the digits split. ``staged`` (the pipeline always gives it for every source but
    ``sklearn``) is the manifest ``stage`` wrote: the raw files are then checked against
    it and read from ``root`` without any download. Returns metadata: counts, shapes, label counts, which files had
    their checksums verified, and whether the raw files came from ``root``'s cache.
    """
    check_request(name, source=source, root=root, path=path)
    start = time.perf_counter()
    if source == "sklearn":
        splits = _from_sklearn_digits(seed)
    elif staged is not None:
        check_staged(staged, name)
        if source == "imagefolder_tar":
            splits = _from_imagefolder_tar(Path(path), CIFAR10_CLASSES)  # type: ignore[arg-type]
        else:
            splits = _from_torchvision(name, Path(root), download=False)  # type: ignore[arg-type]
    elif source == "imagefolder_tar":
        splits = _from_imagefolder_tar(Path(path), CIFAR10_CLASSES)  # type: ignore[arg-type]
    elif source == "download":
        splits = _from_torchvision(name, Path(root), download=True)  # type: ignore[arg-type]
    else:
        splits = _from_mirror(name, Path(path), Path(root))  # type: ignore[arg-type]

    problems = _array_problems(splits.x_train, splits.y_train, splits.x_test, splits.y_test, splits.classes)
    if problems:
        raise DatasetError(f"{name} from {source} ({path or root}): " + "; ".join(problems))
    save_arrays(
        out_path,
        x_train=splits.x_train,
        y_train=splits.y_train,
        x_test=splits.x_test,
        y_test=splits.y_test,
        classes=np.array(splits.classes, dtype=str),
        name=np.array(name, dtype=str),
    )
    n_classes = len(splits.classes)
    meta = {
        "dataset": name,
        "source": source,
        "path": None if path is None else str(path),
        "root": None if root is None else str(root),
        "out_path": str(out_path),
        "n_train": int(splits.x_train.shape[0]),
        "n_test": int(splits.x_test.shape[0]),
        "image_shape": [int(d) for d in splits.x_train.shape[1:]],
        "classes": list(splits.classes),
        "train_label_counts": np.bincount(splits.y_train, minlength=n_classes).tolist(),
        "test_label_counts": np.bincount(splits.y_test, minlength=n_classes).tolist(),
        "checksums_verified": list(splits.checksums_verified),
        "cached": splits.cached,
        "seconds": time.perf_counter() - start,
        **splits.notes,
    }
    log.info(
        "%s from %s: %d train / %d test images of shape %s, %d classes, %d checksums verified, %.1f s",
        name, source, meta["n_train"], meta["n_test"], tuple(meta["image_shape"]), n_classes,
        len(meta["checksums_verified"]), meta["seconds"],
    )
    return meta


def load(path: str | os.PathLike) -> Dataset:
    """Read an artifact written by ``materialise``; damaged or foreign files raise ``ArtifactError``."""
    arrays = load_arrays(path, required=_ARRAY_KEYS)
    classes = arrays["classes"]
    if classes.ndim != 1 or classes.dtype.kind != "U" or arrays["name"].dtype.kind != "U" or arrays["name"].ndim != 0:
        raise ArtifactError(f"{path}: 'classes'/'name' are not string arrays; it was not written by materialise")
    classes_t = tuple(str(c) for c in classes)
    problems = _array_problems(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], classes_t)
    if problems:
        raise ArtifactError(f"{path}: " + "; ".join(problems) + "; delete it and rerun")
    return Dataset(
        name=str(arrays["name"]),
        classes=classes_t,
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
    )
