"""Readers of each source: scikit-learn's digits, torchvision (download and load), and
CIFAR-10 as an ImageFolder ``.tar.gz``."""

from __future__ import annotations

import io
import logging
import os
import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from flatscape.core.datasets.checks import (
    _IMAGE_SUFFIXES,
    _TORCHVISION_CLASS,
    DIGITS_MAX_VALUE,
    DIGITS_TEST_FRACTION,
    DatasetError,
    _check_idx,
    _md5,
    _md5_mismatches,
    _read_sums,
    _Splits,
    _verify_listed,
)

log = logging.getLogger(__name__)


def _from_sklearn_digits(seed: int) -> _Splits:
    """Digits (8x8, 0..16) scaled to 0..255 as round(v * 255 / 16); stratified seeded split."""
    # Imported here: scikit-learn (and torchvision below) cost seconds at every job's start, and
    # only the jobs that build a data set need them, not the many that read its artifact.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / DIGITS_MAX_VALUE)).astype(np.uint8)[:, None]
    labels = digits.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=DIGITS_TEST_FRACTION, stratify=labels, random_state=seed
    )
    # Keep the original file order inside each split: the seed decides membership only.
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    classes = tuple(str(int(c)) for c in digits.target_names)
    return _Splits(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], classes)


def _tv_class(name: str):
    import torchvision.datasets  # slow to import; only data set builders need it (see above)

    return getattr(torchvision.datasets, _TORCHVISION_CLASS[name])


def _mnist_raw_names(cls) -> list[str]:
    """The uncompressed IDX names torchvision keeps in ``<root>/<Class>/raw``."""
    return [os.path.splitext(os.path.basename(fname))[0] for fname, _ in cls.resources]


def _from_torchvision(name: str, root: Path, *, download: bool) -> _Splits:
    """Load ``name`` with torchvision from ``root`` (downloading first if asked)."""
    cls = _tv_class(name)
    if name == "cifar10":
        return _load_cifar(cls, root, download=download)
    return _load_mnist_family(cls, root, download=download)


def _load_mnist_family(cls, root: Path, *, download: bool) -> _Splits:
    raw = root / cls.__name__ / "raw"
    names = _mnist_raw_names(cls)
    cached = all((raw / n).is_file() for n in names)  # torchvision's own "already downloaded" test
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=False)
    except Exception as err:
        bad = _md5_mismatches([(raw / fname, md5) for fname, md5 in cls.resources]) if download else []
        if not bad and all((raw / n).is_file() for n in names):
            # Name the damaged raw file rather than surfacing torchvision's bare assertion.
            for n in names:
                _check_idx(raw / n, ndim=3 if "images" in n else 1)
            raise DatasetError(
                f"{cls.__name__}: torchvision could not read {raw}: {type(err).__name__}: {err}"
            ) from err
        where = "download into" if download else "reading"
        raise DatasetError(
            f"{cls.__name__}: {where} {raw} failed: {err}".rstrip() + "".join(f"\n  {b}" for b in bad)
        ) from err
    verified = (
        ()
        if cached or not download
        else tuple(f"{raw / fname}: md5 {md5} (torchvision download)" for fname, md5 in cls.resources)
    )
    x_train, y_train = train.data.numpy()[:, None], train.targets.numpy().astype(np.int64)
    x_test, y_test = test.data.numpy()[:, None], test.targets.numpy().astype(np.int64)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise DatasetError(f"{raw}: {split} images ({len(x)}) and labels ({len(y)}) differ in count")
    return _Splits(
        np.ascontiguousarray(x_train), y_train, np.ascontiguousarray(x_test), y_test,
        tuple(cls.classes), verified, cached=cached,
    )


def _cifar_files(cls) -> list[tuple[str, str]]:
    """(file name, md5) of every file torchvision reads for CIFAR-10, metadata included."""
    return [(f, m) for f, m in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]


def _load_cifar(cls, root: Path, *, download: bool) -> _Splits:
    folder = root / cls.base_folder
    cached = all((folder / f).is_file() and _md5(folder / f) == m for f, m in _cifar_files(cls))
    tarball = root / cls.filename
    try:
        train = cls(root, train=True, download=download and not cached)
        test = cls(root, train=False, download=False)
    except (RuntimeError, OSError, tarfile.TarError, EOFError, zlib.error, pickle.UnpicklingError) as err:
        detail = _md5_mismatches([(tarball, cls.tgz_md5)]) if download and not cached else []
        detail += _md5_mismatches([(folder / f, m) for f, m in _cifar_files(cls)])
        where = f"download of {cls.url} into {root}" if download and not cached else f"reading {folder}"
        raise DatasetError(
            f"CIFAR10: {where} failed: {type(err).__name__}: {err}" + "".join(f"\n  {d}" for d in detail)
        ) from err
    # torchvision checks every batch's md5 each time it constructs CIFAR10.
    verified = tuple(f"{folder / f}: md5 {m} (torchvision)" for f, m in _cifar_files(cls))
    if download and not cached:
        verified = (f"{tarball}: md5 {cls.tgz_md5} (torchvision download)",) + verified
    return _Splits(
        _hwc_to_chw(train.data), np.asarray(train.targets, dtype=np.int64),
        _hwc_to_chw(test.data), np.asarray(test.targets, dtype=np.int64),
        tuple(train.classes), verified, cached=cached,
    )


def _hwc_to_chw(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))


def _from_imagefolder_tar(tar_path: Path, classes: tuple[str, ...]) -> _Splits:
    """Decode ``train/<class>/*`` and ``test/<class>/*`` images while streaming ``tar_path``.

    Labels are the index of the class folder in ``classes``; within a class, images
    are ordered by file name. Nothing is extracted to disk.
    """
    # Pillow comes with torchvision (the [pipeline] extra); the core install lacks it.
    from PIL import Image, UnidentifiedImageError

    verified = [v for v in [_verify_listed(tar_path, _read_sums(tar_path.parent))] if v]
    found: dict[str, dict[str, dict[str, np.ndarray]]] = {"train": {}, "test": {}}
    shape: tuple[int, ...] | None = None
    try:
        with tarfile.open(tar_path, "r|*") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                parts = PurePosixPath(member.name).parts
                is_image = PurePosixPath(member.name).suffix.lower() in _IMAGE_SUFFIXES
                if len(parts) < 3 or parts[-3] not in found:
                    if is_image:
                        raise DatasetError(
                            f"{tar_path}: member {member.name} is not under train/<class>/ or test/<class>/"
                        )
                    continue  # README, checksums and the like
                split, cls_name, fname = parts[-3], parts[-2], parts[-1]
                if cls_name not in classes:
                    raise DatasetError(
                        f"{tar_path}: member {member.name} is in unknown class folder {cls_name!r}; "
                        f"expected one of {', '.join(classes)}"
                    )
                data = tf.extractfile(member).read()  # type: ignore[union-attr]
                try:
                    with Image.open(io.BytesIO(data)) as im:
                        # convert() copies even when already RGB; skipping it saves ~10% of decode time
                        arr = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
                except (UnidentifiedImageError, OSError, ValueError) as err:
                    raise DatasetError(f"{tar_path}: member {member.name} is not a decodable image ({err})") from err
                if shape is None:
                    shape = arr.shape
                elif arr.shape != shape:
                    raise DatasetError(f"{tar_path}: member {member.name} has shape {arr.shape}, others {shape}")
                found[split].setdefault(cls_name, {})[fname] = arr
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DatasetError(f"{tar_path}: truncated or corrupted archive ({type(err).__name__}: {err})") from err

    out = []
    for split in ("train", "test"):
        missing = [c for c in classes if not found[split].get(c)]
        if missing:
            raise DatasetError(f"{tar_path}: no {split} images for classes {', '.join(missing)}")
        xs, ys = [], []
        for label, cls_name in enumerate(classes):
            for fname in sorted(found[split][cls_name]):
                xs.append(found[split][cls_name][fname])
                ys.append(label)
        out.append(_hwc_to_chw(np.stack(xs)))
        out.append(np.asarray(ys, dtype=np.int64))
    return _Splits(*out, classes=classes, checksums_verified=tuple(verified))

