"""Staging: every network access and every raw-file check happens here, in the ``data``
target's local jobs (on a cluster: the login node), never in a compute job.

``stage`` fetches (``download``) or unpacks (``mirror``) one data set under ``root``,
verifies its checksums, and writes a manifest listing each staged file with its
SHA-256. Compute jobs call ``check_staged`` before they read: a staged file that is
missing or changed fails at once, naming the file and the ``data`` target; they never
download.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flatscape.core.datasets.checks import (
    DatasetError,
    _read_sums,
    _sha256,
    _verify_listed,
    check_request,
)
from flatscape.core.datasets.mirrors import _from_mirror
from flatscape.core.datasets.readers import (
    _cifar_files,
    _from_torchvision,
    _mnist_raw_names,
    _tv_class,
)
from flatscape.core.datasets.voc import VOC_SPLITS, stage_voc2007, voc_yolo_dir
from flatscape.pipeline.io import load_json, save_json
from flatscape.pipeline.naming import STAGED_SOURCES

log = logging.getLogger(__name__)

STAGE_HINT = (
    "stage the data first: `snakemake --cores 1 data --configfile <your preset>` on a machine with internet "
    "(on a cluster: the login node; see docs/cluster.md), then rerun"
)


def staged_files(name: str, *, source: str, root, path=None) -> list[Path]:
    """The files a compute job reads after staging (the raw files under ``root``, or the archive)."""
    if source == "imagefolder_tar":
        return [Path(path)]
    if name == "cifar10":
        cls = _tv_class(name)
        return [Path(root) / cls.base_folder / f for f, _ in _cifar_files(cls)]
    cls = _tv_class(name)
    return [Path(root) / cls.__name__ / "raw" / n for n in _mnist_raw_names(cls)]


def stage(name: str, manifest, *, source: str, root, path=None) -> dict:
    """Fetch or unpack data set ``name``, verify it, and write ``manifest`` (JSON) last."""
    if name == "voc2007":
        meta = stage_voc2007(root, source=source, path=path)
        meta.update(dataset=name, source=source, files={})
        save_json(manifest, meta)
        return meta
    check_request(name, source=source, root=root, path=path)
    if source not in STAGED_SOURCES:
        raise ValueError(f"source {source!r} of {name!r} needs no staging (it is read inside the job)")
    if source == "download":
        verified = list(_from_torchvision(name, Path(root), download=True).checksums_verified)
    elif source == "mirror":
        verified = list(_from_mirror(name, Path(path), Path(root)).checksums_verified)
    else:
        verified = [v for v in [_verify_listed(Path(path), _read_sums(Path(path).parent))] if v]
    files = {str(f): _sha256(f) for f in staged_files(name, source=source, root=root, path=path)}
    meta = {"dataset": name, "source": source, "root": str(root), "path": None if path is None else str(path),
            "files": files, "checksums_verified": verified}  # fmt: skip
    save_json(manifest, meta)
    log.info("%s staged from %s: %d files, %d checksums verified", name, source, len(files), len(verified))
    return meta


def check_staged(manifest, name: str) -> dict:
    """The manifest of a staged data set, after checking its files are still those staging verified."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: data set {name!r} is not staged; {STAGE_HINT}")
    meta = load_json(manifest)
    for fname, digest in meta.get("files", {}).items():
        f = Path(fname)
        if not f.is_file():
            raise DatasetError(f"{f}: staged file of {name!r} is missing; delete {manifest}, then {STAGE_HINT}")
        if _sha256(f) != digest:
            raise DatasetError(
                f"{f}: staged file of {name!r} changed since it was verified; delete {manifest}, then {STAGE_HINT}"
            )
    return meta


def check_staged_voc(manifest, root) -> Path:
    """The staged VOC 2007 YOLO folder, after checking every split holds the staged number of images and labels."""
    meta = check_staged(manifest, "voc2007")
    yolo = voc_yolo_dir(root)
    for split in VOC_SPLITS:
        for kind, ext in (("images", ".jpg"), ("labels", ".txt")):
            folder = yolo / kind / split
            n = len([f for f in os.listdir(folder) if f.endswith(ext)]) if folder.is_dir() else 0
            if n != meta.get(split):
                raise DatasetError(
                    f"{folder}: {n} {kind} where staging wrote {meta.get(split)}; delete {manifest}, then {STAGE_HINT}"
                )
    return yolo
