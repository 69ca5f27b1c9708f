"""Pascal VOC 2007 (Figure 4.2c): the official trainval and test tars, or a local mirror in
the standard ``VOCdevkit/VOC2007`` layout, checked file by file and converted to
Ultralytics' YOLO layout by this module (the XML is read with ``xml.etree``).

Only VOC 2007 is fetched (trainval 5011 images, test 4952), never VOC 2012. The staged
data land under ``<root>/voc2007/``: ``VOCdevkit/VOC2007`` (downloads only; a mirror is
read where it is) and ``yolo/`` with ``images/{trainval,test}`` and ``labels/...``.
Objects marked ``difficult`` are left out of the labels, as Ultralytics' own VOC
conversion does.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path


from flatscape.core.datasets.checks import (
    DatasetError,
    _md5,
    _read_sums,
    _verify_listed,
)

log = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
    "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
VOC_SPLITS = ("trainval", "test")
VOC_SOURCES = ("download", "mirror")


@dataclass(frozen=True)
class VocTar:
    url: str
    filename: str
    md5: str


# The official tars (the same URLs and md5s as torchvision's VOCDetection).
VOC2007_TARS = (
    VocTar("https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar",
           "VOCtrainval_06-Nov-2007.tar", "c52e279531787c972589f7e41ab4ae64"),
    VocTar("https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar",
           "VOCtest_06-Nov-2007.tar", "b6e924de25625d8de591ea690078ad9f"),
)  # fmt: skip


def voc_dir(root) -> Path:
    return Path(root) / "voc2007"


def voc_yolo_dir(root) -> Path:
    """The staged YOLO layout (``images/<split>``, ``labels/<split>``) that detection jobs read."""
    return voc_dir(root) / "yolo"


def download_voc2007(root, tars: tuple[VocTar, ...] = VOC2007_TARS) -> tuple[Path, list[str]]:
    """Fetch and md5-check the VOC 2007 tars into ``<root>/voc2007`` and unpack them; return the devkit and records.

    A tar already there with the right md5 is not fetched again; a partial or corrupt
    one is fetched anew (torchvision's ``download_url``).
    """
    # Imported here: torchvision costs seconds at every job's start; only staging downloads.
    from torchvision.datasets.utils import download_url

    dest = voc_dir(root)
    dest.mkdir(parents=True, exist_ok=True)
    verified = []
    for tar in tars:
        path = dest / tar.filename
        try:
            download_url(tar.url, str(dest), tar.filename, tar.md5)
        except Exception as err:  # URLError, HTTPError, OSError, torchvision's md5 RuntimeError
            raise DatasetError(
                f"{path}: download of {tar.url} failed ({type(err).__name__}: {err}). Stage the data where the "
                "network is reachable (on a cluster: the login node) with `snakemake data --configfile ...`, or set "
                "data.sources.voc2007 to {source: mirror, path: <folder holding VOCdevkit/VOC2007>}"
            ) from err
        if _md5(path) != tar.md5:
            raise DatasetError(f"{path}: md5 {_md5(path)} is not the expected {tar.md5}; delete it and rerun `snakemake data`")
        verified.append(f"{path}: md5 {tar.md5}")
        unpacked = dest / f".{tar.filename}.unpacked"  # written after a complete extraction
        if unpacked.is_file() and unpacked.read_text() == tar.md5:
            continue
        try:
            with tarfile.open(path) as tf:
                tf.extractall(dest, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
            raise DatasetError(f"{path}: cannot unpack ({type(err).__name__}: {err}); delete it and rerun `snakemake data`") from err
        unpacked.write_text(tar.md5)
    return dest / "VOCdevkit" / "VOC2007", verified


def find_devkit(path) -> Path:
    """The ``VOC2007`` folder of a mirror given as it, its ``VOCdevkit`` parent, or the folder above that."""
    path = Path(path)
    for cand in (path, path / "VOC2007", path / "VOCdevkit" / "VOC2007"):
        if (cand / "ImageSets" / "Main").is_dir() and (cand / "Annotations").is_dir():
            return cand
    raise DatasetError(
        f"{path}: not a VOC 2007 folder (expected VOCdevkit/VOC2007 with Annotations/, JPEGImages/ and "
        "ImageSets/Main/{trainval,test}.txt); fix data.sources.voc2007.path"
    )


def verify_mirror_sums(mirror: Path, devkit: Path) -> list[str]:
    """Check every file a ``SHA256SUMS`` in the mirror (or its devkit) lists, paths relative to that file."""
    verified = []
    for folder in dict.fromkeys((mirror, devkit)):
        sums = _read_sums(folder)
        for rel, (_, sums_path) in sums.items():
            target = folder / rel
            if not target.is_file():
                raise DatasetError(f"{target}: listed in {sums_path} but missing from the VOC mirror; restore it")
            rec = _verify_listed(target, {target.name: sums[rel]})
            if rec:
                verified.append(rec)
    return verified


def _fail(path: Path, what: str) -> DatasetError:
    return DatasetError(
        f"{path}: {what}. The VOC 2007 folder is incomplete or damaged: restore the file (re-extract the official "
        "tar, or fix the mirror), then rerun `snakemake data --configfile ...`"
    )


def read_annotation(xml_path: Path) -> tuple[int, int, list[tuple[int, float, float, float, float]]]:
    """(width, height, [(class, x_centre, y_centre, w, h) normalised]) of one annotation; difficult objects dropped."""
    if not xml_path.is_file():
        raise _fail(xml_path, "annotation missing for a listed image")
    try:
        tree = ET.parse(xml_path).getroot()
        width, height = int(tree.find("size/width").text), int(tree.find("size/height").text)
        boxes = []
        for obj in tree.iter("object"):
            name = obj.find("name").text.strip()
            difficult = obj.find("difficult")
            if difficult is not None and int(difficult.text) == 1:
                continue
            if name not in VOC_CLASSES:
                raise ValueError(f"unknown class {name!r}")
            bb = obj.find("bndbox")
            x0, x1, y0, y1 = (float(bb.find(k).text) for k in ("xmin", "xmax", "ymin", "ymax"))
            if not (0 < x0 < x1 <= width + 1 and 0 < y0 < y1 <= height + 1):
                raise ValueError(f"box {(x0, y0, x1, y1)} outside the {width}x{height} image")
            boxes.append((VOC_CLASSES.index(name), ((x0 + x1) / 2 - 1) / width, ((y0 + y1) / 2 - 1) / height,
                          (x1 - x0) / width, (y1 - y0) / height))  # fmt: skip
    except ET.ParseError as err:
        raise _fail(xml_path, f"not well-formed XML ({err})") from err
    except (AttributeError, TypeError, ValueError) as err:
        raise _fail(xml_path, f"not a VOC annotation ({type(err).__name__}: {err})") from err
    if width <= 0 or height <= 0:
        raise _fail(xml_path, f"image size {width}x{height}")
    return width, height, boxes


def check_jpeg(path: Path, size: tuple[int, int]) -> None:
    """A listed image must be a complete JPEG of the annotated size (header parse, verify, end marker)."""
    from PIL import Image, UnidentifiedImageError  # Pillow comes with the [pipeline] extra, not the core

    if not path.is_file():
        raise _fail(path, "image missing for a listed id")
    with open(path, "rb") as fh:
        magic = fh.read(3)
    # Checked before PIL sees the file: a process that imported Ultralytics has a patched
    # Image.open that answers an unidentified file with an import error of its own.
    if magic != b"\xff\xd8\xff":
        raise _fail(path, f"not a readable JPEG (starts {magic.hex() or 'empty'}, not ffd8ff)")
    try:
        with Image.open(path, formats=["JPEG"]) as im:
            fmt, got = im.format, im.size
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise _fail(path, f"not a readable JPEG ({type(err).__name__}: {err})") from err
    with open(path, "rb") as fh:
        fh.seek(max(0, path.stat().st_size - 2))
        end = fh.read(2)
    if fmt != "JPEG" or end != b"\xff\xd9":
        raise _fail(path, f"not a complete JPEG (format {fmt}, ends {end.hex()})")
    if got != size:
        raise _fail(path, f"image is {got[0]}x{got[1]} but its annotation says {size[0]}x{size[1]}")


def split_ids(devkit: Path, split: str) -> list[str]:
    listing = devkit / "ImageSets" / "Main" / f"{split}.txt"
    if not listing.is_file():
        raise _fail(listing, f"the {split} list is missing")
    ids = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not ids:
        raise _fail(listing, "lists no image")
    return ids


def convert_to_yolo(devkit: Path, out: Path) -> dict[str, int]:
    """Check every listed image and annotation of ``devkit``, then write the YOLO layout at ``out`` (atomically).

    Every file is checked before anything is written; the folder appears complete or
    not at all. Images are hard-linked where the file system allows, else copied.
    """
    plan = {}
    for split in VOC_SPLITS:
        plan[split] = []
        for image_id in split_ids(devkit, split):
            w, h, boxes = read_annotation(devkit / "Annotations" / f"{image_id}.xml")
            jpeg = devkit / "JPEGImages" / f"{image_id}.jpg"
            check_jpeg(jpeg, (w, h))
            plan[split].append((image_id, jpeg, boxes))
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    counts = {}
    for split, items in plan.items():
        (tmp / "images" / split).mkdir(parents=True)
        (tmp / "labels" / split).mkdir(parents=True)
        for image_id, jpeg, boxes in items:
            _link_or_copy(jpeg, tmp / "images" / split / f"{image_id}.jpg")
            lines = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes)
            (tmp / "labels" / split / f"{image_id}.txt").write_text(lines)
        counts[split] = len(items)
        counts[f"{split}_objects"] = sum(len(b) for _, _, b in items)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return counts


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def stage_voc2007(root, *, source: str, path=None, tars: tuple[VocTar, ...] = VOC2007_TARS) -> dict:
    """Obtain VOC 2007 (download or mirror), check it and write the YOLO layout under ``<root>/voc2007/yolo``."""
    if source not in VOC_SOURCES:
        raise ValueError(f"source {source!r} is not available for voc2007; use one of {', '.join(VOC_SOURCES)}")
    if source == "download":
        devkit, verified = download_voc2007(root, tars)
        devkit = find_devkit(devkit)
    else:
        if path is None or not Path(path).is_dir():
            raise ValueError(f"path {path!r} for data set 'voc2007' (source 'mirror') is not an existing folder")
        devkit = find_devkit(path)
        verified = verify_mirror_sums(Path(path), devkit)
    counts = convert_to_yolo(devkit, voc_yolo_dir(root))
    log.info("VOC 2007 from %s: %s", devkit, counts)
    return {"devkit": str(devkit), "yolo": str(voc_yolo_dir(root)), "checksums_verified": verified, **counts}
