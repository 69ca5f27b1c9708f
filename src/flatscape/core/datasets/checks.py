"""Shared pieces of the data set readers: the error type, what a reader returns, and file checks
(checksums, gzip, IDX headers, array sanity)."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


DATASET_NAMES = ("digits", "mnist", "kmnist", "fashion_mnist", "cifar10")
SOURCES = ("download", "mirror", "imagefolder_tar", "sklearn")
VALID_SOURCES: dict[str, tuple[str, ...]] = {
    "digits": ("sklearn",),
    "mnist": ("download", "mirror"),
    "kmnist": ("download", "mirror"),
    "fashion_mnist": ("download", "mirror"),
    "cifar10": ("download", "mirror", "imagefolder_tar"),
}
_NEEDS_PATH = ("mirror", "imagefolder_tar")
_NEEDS_ROOT = ("download", "mirror")
_TORCHVISION_CLASS = {"mnist": "MNIST", "kmnist": "KMNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}

# The standard CIFAR-10 label order (torchvision's batches.meta); an ImageFolder copy
# carries only folder names, so its labels are defined by this order.
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# scikit-learn's digits take integer values 0..16; the artifact stores 0..255 like the others.
DIGITS_MAX_VALUE = 16
DIGITS_TEST_FRACTION = 0.2

SUMS_FILES = ("SHA256SUMS", "SHA256SUMS.uncompressed")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".webp", ".tif", ".tiff")
_ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes", "name")
_CHUNK = 1 << 20



class DatasetError(RuntimeError):
    """An input file (download, mirror, archive) is missing, truncated or corrupted."""


@dataclass(frozen=True, eq=False)
class _Splits:
    """What a source reader hands back before the common checks and the write."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    checksums_verified: tuple[str, ...] = ()
    cached: bool = False
    notes: dict[str, Any] = field(default_factory=dict)


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _md5_mismatches(files: list[tuple[Path, str]]) -> list[str]:
    """Lines naming each present file whose md5 differs from the expected one."""
    lines = []
    for p, md5 in files:
        if p.is_file() and (got := _md5(p)) != md5:
            lines.append(f"{p}: md5 {got} does not match the expected {md5} (corrupted or truncated file)")
    return lines


def _read_sums(folder: Path) -> dict[str, tuple[str, Path]]:
    """``{file name: (sha256, sums file)}`` from ``SHA256SUMS`` files in ``folder`` (``sha256sum`` format)."""
    sums: dict[str, tuple[str, Path]] = {}
    for sums_name in SUMS_FILES:
        sums_path = folder / sums_name
        if not sums_path.is_file():
            continue
        for lineno, line in enumerate(sums_path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            digest, _, fname = line.strip().partition(" ")
            fname = fname.strip().lstrip("*")
            if len(digest) != 64 or not fname:
                raise DatasetError(f"{sums_path}:{lineno}: not a 'sha256  name' line: {line!r}")
            sums[fname] = (digest.lower(), sums_path)
    return sums


def _verify_listed(path: Path, sums: dict[str, tuple[str, Path]]) -> str | None:
    """Check ``path`` against its ``SHA256SUMS`` entry (if listed); return a record line."""
    if path.name not in sums:
        if sums:
            log.warning("%s is not listed in the SHA256SUMS beside it; not verified", path)
        return None
    return _verify_digest(str(path), path.name, _sha256(path), sums)


def _verify_digest(label: str, name: str, digest: str, sums: dict[str, tuple[str, Path]]) -> str | None:
    if name not in sums:
        return None
    expected, sums_path = sums[name]
    if digest != expected:
        raise DatasetError(f"{label}: SHA-256 {digest} does not match {sums_path} ({expected}); corrupted file")
    return f"{label}: sha256 matches {sums_path.name}"


def _gunzip(src: Path, dst: Path) -> str:
    """Decompress ``src`` into ``dst``; return the SHA-256 of the decompressed bytes."""
    h = hashlib.sha256()
    try:
        with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                h.update(chunk)
                fout.write(chunk)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError; a cut stream is EOFError
        raise DatasetError(f"{src}: truncated or corrupted gzip file ({type(err).__name__}: {err})") from err
    return h.hexdigest()


def _check_idx(path: Path, *, ndim: int, label: str | None = None) -> tuple[int, ...]:
    """Validate an uncompressed uint8 IDX file: magic ``00 00 08 ndim``, size = header + prod(dims)."""
    label = label or str(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(4 + 4 * ndim)
    if len(header) < 4 or header[:3] != b"\x00\x00\x08" or header[3] != ndim:
        raise DatasetError(
            f"{label}: bad IDX magic {header[:4].hex() or '(empty)'}; expected 0000080{ndim} "
            f"(uint8, {ndim}-d); corrupted or not an IDX file"
        )
    if len(header) < 4 + 4 * ndim:
        raise DatasetError(f"{label}: truncated IDX header ({size} bytes)")
    dims = tuple(int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = 4 + 4 * ndim + int(np.prod(dims, dtype=np.int64))
    if size != expected:
        raise DatasetError(
            f"{label}: {size} bytes, but its IDX header dims {dims} need {expected}; truncated or corrupted"
        )
    return dims


def _array_problems(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, classes: tuple[str, ...]
) -> list[str]:
    """Everything wrong with a standardised data set (empty list when it is sound)."""
    problems = []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.dtype != np.uint8 or x.ndim != 4:
            problems.append(f"x_{split} is {x.dtype} {x.shape}, expected uint8 (N, C, H, W)")
        if y.dtype != np.int64 or y.ndim != 1:
            problems.append(f"y_{split} is {y.dtype} {y.shape}, expected int64 (N,)")
        elif x.ndim >= 1 and len(y) != len(x):
            problems.append(f"x_{split} has {len(x)} images but y_{split} {len(y)} labels")
        elif len(y) and (y.min() < 0 or y.max() >= len(classes)):
            problems.append(f"y_{split} has labels outside 0..{len(classes) - 1}")
        if x.ndim == 4 and x.shape[0] == 0:
            problems.append(f"x_{split} is empty")
    if x_train.ndim == 4 and x_test.ndim == 4 and x_train.shape[1:] != x_test.shape[1:]:
        problems.append(f"train images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ in shape")
    return problems


def check_request(
    name: str,
    *,
    source: str,
    root: str | os.PathLike | None,
    path: str | os.PathLike | None,
) -> None:
    """Reject an impossible request with a ``ValueError`` before any file is touched."""
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASET_NAMES)}")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r} for data set {name!r}; known: {', '.join(SOURCES)}")
    if source not in VALID_SOURCES[name]:
        raise ValueError(
            f"source {source!r} is not available for data set {name!r}; use one of {', '.join(VALID_SOURCES[name])}"
        )
    if source in _NEEDS_PATH:
        if path is None or str(path) == "":
            raise ValueError(f"source {source!r} for data set {name!r} needs a path (the mirror folder or .tar.gz)")
        want_dir = source == "mirror"
        p = Path(path)
        if not (p.is_dir() if want_dir else p.is_file()):
            kind = "folder" if want_dir else "file"
            raise ValueError(f"path {str(p)!r} for data set {name!r} (source {source!r}) is not an existing {kind}")
    elif path is not None:
        # A path on a download/sklearn source is almost always a mistyped source; say so.
        raise ValueError(f"source {source!r} for data set {name!r} takes no path, but path={str(path)!r} was given")
    if source in _NEEDS_ROOT and (root is None or str(root) == ""):
        raise ValueError(f"source {source!r} for data set {name!r} needs a root folder for torchvision's raw files")

