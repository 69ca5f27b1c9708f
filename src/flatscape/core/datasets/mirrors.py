"""Local mirrors: a folder in torchvision's raw layout, verified against ``SHA256SUMS``
files beside it, staged under ``root`` and read with torchvision."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from flatscape.core.datasets.checks import (
    _CHUNK,
    DatasetError,
    _check_idx,
    _gunzip,
    _md5,
    _read_sums,
    _Splits,
    _verify_digest,
    _verify_listed,
)
from flatscape.core.datasets.readers import (
    _cifar_files,
    _from_torchvision,
    _mnist_raw_names,
    _tv_class,
)
from flatscape.pipeline.io import atomic_path

log = logging.getLogger(__name__)


def _from_mirror(name: str, mirror: Path, root: Path) -> _Splits:
    cls = _tv_class(name)
    sums = _read_sums(mirror)
    if name == "cifar10":
        verified = _stage_cifar_mirror(cls, mirror, root, sums)
    else:
        verified = _stage_mnist_mirror(cls, mirror, root, sums)
    splits = _from_torchvision(name, root, download=False)
    return _Splits(
        splits.x_train, splits.y_train, splits.x_test, splits.y_test, splits.classes,
        tuple(verified) + splits.checksums_verified, cached=False,
    )


def _stage_mnist_mirror(cls, mirror: Path, root: Path, sums: dict[str, tuple[str, Path]]) -> list[str]:
    """Verify the mirror's IDX files and place them, uncompressed, in ``<root>/<Class>/raw``."""
    raw = root / cls.__name__ / "raw"
    processed = root / cls.__name__ / "processed"
    legacy = [processed / f for f in (cls.training_file, cls.test_file) if (processed / f).is_file()]
    if legacy:
        # torchvision prefers these old caches over raw/, which would silently ignore the mirror.
        raise DatasetError(
            f"{', '.join(map(str, legacy))}: legacy torchvision cache would shadow mirror {mirror}; remove it"
        )
    sources = []
    for n in _mnist_raw_names(cls):
        candidates = [mirror / f"{n}.gz", mirror / n]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise DatasetError(f"{mirror}: mirror lacks {n}.gz or {n} (has: {', '.join(sorted(os.listdir(mirror)))})")
        sources.append((n, found))

    verified = [_verify_listed(src, sums) for _, src in sources]  # all sums first: fail before unpacking
    raw.mkdir(parents=True, exist_ok=True)
    for n, src in sources:
        dst = raw / n
        ndim = 3 if "images" in n else 1
        if src.suffix == ".gz":
            with atomic_path(dst) as tmp:
                digest = _gunzip(src, tmp)
                _check_idx(tmp, ndim=ndim, label=f"{src} (decompressed)")
                verified.append(_verify_digest(f"{src} (decompressed {n})", n, digest, sums))
        else:
            _check_idx(src, ndim=ndim)
            if not (dst.exists() and dst.samefile(src)):
                with atomic_path(dst) as tmp:
                    shutil.copyfile(src, tmp)
    return [v for v in verified if v]


def _stage_cifar_mirror(cls, mirror: Path, root: Path, sums: dict[str, tuple[str, Path]]) -> list[str]:
    """Place CIFAR-10's python batches in ``<root>/cifar-10-batches-py``, md5-checked per file."""
    folder = root / cls.base_folder
    files = _cifar_files(cls)
    tarball = mirror / cls.filename
    if mirror.name == cls.base_folder and not tarball.is_file():
        src_dir: Path | None = mirror
    elif (mirror / cls.base_folder).is_dir():
        src_dir = mirror / cls.base_folder
    elif tarball.is_file():
        src_dir = None
    else:
        raise DatasetError(f"{mirror}: mirror has neither {cls.filename} nor {cls.base_folder}/")

    if src_dir is not None:
        verified = [_verify_listed(src_dir / f, sums) for f, _ in files if (src_dir / f).is_file()]
        for f, md5 in files:
            src = src_dir / f
            if not src.is_file():
                raise DatasetError(f"{src}: missing from the CIFAR-10 mirror")
            if _md5(src) != md5:
                raise DatasetError(f"{src}: md5 {_md5(src)} does not match torchvision's {md5} (corrupted file)")
        if not (folder.exists() and folder.samefile(src_dir)):
            folder.mkdir(parents=True, exist_ok=True)
            for f, _ in files:
                with atomic_path(folder / f) as tmp:
                    shutil.copyfile(src_dir / f, tmp)
        return [v for v in verified if v]

    verified = [_verify_listed(tarball, sums)]
    if all((folder / f).is_file() and _md5(folder / f) == m for f, m in files):
        log.info("%s already holds md5-verified batches; not unpacking %s again", folder, tarball)
        return [v for v in verified if v]
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {f"{cls.base_folder}/{f}": (f, m) for f, m in files}
    seen: set[str] = set()
    try:
        with tarfile.open(tarball, "r|gz") as tf:
            for member in tf:
                key = str(PurePosixPath(member.name))
                if key not in wanted or not member.isfile():
                    continue
                fname, md5 = wanted[key]
                with atomic_path(folder / fname) as tmp:
                    h = hashlib.md5(usedforsecurity=False)
                    with tf.extractfile(member) as fin, open(tmp, "wb") as fout:  # type: ignore[union-attr]
                        while chunk := fin.read(_CHUNK):
                            h.update(chunk)
                            fout.write(chunk)
                    if h.hexdigest() != md5:
                        raise DatasetError(
                            f"{tarball}: member {key} has md5 {h.hexdigest()}, torchvision expects {md5} (corrupted)"
                        )
                seen.add(key)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DatasetError(f"{tarball}: truncated or corrupted tar.gz ({type(err).__name__}: {err})") from err
    missing = sorted(set(wanted) - seen)
    if missing:
        raise DatasetError(f"{tarball}: archive lacks {', '.join(missing)}")
    return [v for v in verified if v]

