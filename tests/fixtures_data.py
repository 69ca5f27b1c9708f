"""Small data sets in each real on-disk format, and a loopback HTTP server, for tests
(tests/test_datasets.py, tests/test_staging.py, tests/test_paper_smoke.py): MNIST-family
IDX files (gzipped or not), CIFAR-10's python pickle batches and tarball, and a Pascal
VOC 2007 folder (VOCdevkit/VOC2007 with XML annotations and JPEGs, or its tars)."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import pickle
import tarfile
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from flatscape.core.datasets import CIFAR10_CLASSES
from flatscape.core.datasets.voc import VOC_CLASSES

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ---- tiny data in the true formats -------------------------------------------------------


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def idx_bytes(a: np.ndarray) -> bytes:
    """IDX (LeCun) encoding of a uint8 array: 00 00 08 ndim, big-endian dims, data."""
    header = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return header + np.ascontiguousarray(a, dtype=np.uint8).tobytes()


def tiny_mnist(seed: int, n_train: int = 11, n_test: int = 7, hw: tuple[int, int] = (5, 4)) -> dict[str, np.ndarray]:
    """Random IDX contents; non-square images so a transposed read would show."""
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist(folder: Path, arrays: dict[str, np.ndarray], *, gz: bool) -> dict[str, bytes]:
    """Write the four IDX files (optionally gzipped) into ``folder``; return {file name: bytes}."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, a in arrays.items():
        raw = idx_bytes(a)
        fname, data = (f"{name}.gz", gzip.compress(raw, mtime=0)) if gz else (name, raw)
        (folder / fname).write_bytes(data)
        written[fname] = data
    return written


def write_sums(folder: Path, digests: dict[str, str], sums_name: str = "SHA256SUMS") -> None:
    (folder / sums_name).write_text("".join(f"{d}  {n}\n" for n, d in digests.items()))


@dataclass(frozen=True)
class TinyCifar:
    batches: dict[str, bytes]  # file name -> pickled bytes, as in cifar-10-batches-py/
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def tiny_cifar(seed: int, per_batch: int = 3, n_test: int = 4) -> TinyCifar:
    """CIFAR-10's python layout: pickled dicts with 'data' (N, 3072) in CHW order and 'labels'."""
    rng = np.random.default_rng(seed)
    batches, xs, ys = {}, [], []
    for fname, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        names = [f"{fname}_{i}.png" for i in range(n)]
        entry = {"batch_label": fname, "data": data, "labels": labels, "filenames": names}
        batches[fname] = pickle.dumps(entry, protocol=2)
        xs.append(data.reshape(n, 3, 32, 32))
        ys.append(np.asarray(labels, dtype=np.int64))
    batches["batches.meta"] = pickle.dumps({"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": per_batch})
    return TinyCifar(batches, np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5])


def tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def cifar_tarball(cifar: TinyCifar) -> bytes:
    return tar_gz({f"cifar-10-batches-py/{f}": b for f, b in cifar.batches.items()})


def flip_byte(data: bytes, where: int) -> bytes:
    return data[:where] + bytes([data[where] ^ 0xFF]) + data[where + 1 :]


# ---- loopback HTTP server ------------------------------------------------------------------


@dataclass
class Server:
    root: Path
    url: str
    requests: list[str]


@contextlib.contextmanager
def http_server(served: Path):
    """Serve ``served`` on 127.0.0.1 (ephemeral port) in a thread; yield a Server recording every GET.

    The caller must keep proxies away from 127.0.0.1 (``no_proxy``), as ``server`` in
    tests/test_datasets.py does.
    """
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Server(served, f"http://127.0.0.1:{httpd.server_address[1]}", requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


# ---- Pascal VOC 2007 ------------------------------------------------------------------------


@dataclass(frozen=True)
class TinyVoc:
    devkit: Path  # .../VOCdevkit/VOC2007
    ids: dict[str, list[str]]  # split -> image ids
    labels: dict[str, list[tuple[int, float, float, float, float]]]  # id -> expected YOLO rows (difficult dropped)


def voc_xml(image_id: str, width: int, height: int, objects: list[tuple[str, int, int, int, int, int]]) -> str:
    objs = "".join(
        f"<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for n, x0, y0, x1, y1, d in objects
    )
    return (f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
            f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>{objs}</annotation>")  # fmt: skip


def write_voc_devkit(folder: Path, *, n_trainval: int = 6, n_test: int = 4, size: tuple[int, int] = (48, 40),
                     seed: int = 0) -> TinyVoc:  # fmt: skip
    """``folder/VOCdevkit/VOC2007`` with JPEGs, XML annotations (one difficult object per 3rd image) and the lists."""
    rng = np.random.default_rng(seed)
    devkit = folder / "VOCdevkit" / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (devkit / sub).mkdir(parents=True, exist_ok=True)
    w, h = size
    ids: dict[str, list[str]] = {"trainval": [], "test": []}
    labels = {}
    for k in range(n_trainval + n_test):
        image_id = f"{k + 1:06d}"
        split = "trainval" if k < n_trainval else "test"
        ids[split].append(image_id)
        objects, rows = [], []
        for j in range(1 + k % 2):
            cls = int(rng.integers(len(VOC_CLASSES)))
            x0, y0 = int(rng.integers(1, w // 2)), int(rng.integers(1, h // 2))
            x1, y1 = int(rng.integers(x0 + 4, w + 1)), int(rng.integers(y0 + 4, h + 1))
            difficult = int(j == 1 and k % 3 == 0)
            objects.append((VOC_CLASSES[cls], x0, y0, x1, y1, difficult))
            if not difficult:
                rows.append((cls, ((x0 + x1) / 2 - 1) / w, ((y0 + y1) / 2 - 1) / h, (x1 - x0) / w, (y1 - y0) / h))
        labels[image_id] = rows
        (devkit / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, w, h, objects))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(devkit / "JPEGImages" / f"{image_id}.jpg", quality=90)
    for split, split_ids in ids.items():
        (devkit / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in split_ids))
    return TinyVoc(devkit, ids, labels)


def voc_tars(voc: TinyVoc) -> dict[str, bytes]:
    """The two official tars' layout (``VOCdevkit/VOC2007/...``): trainval files in one, test files in the other."""
    out = {}
    for split, fname in (("trainval", "VOCtrainval_06-Nov-2007.tar"), ("test", "VOCtest_06-Nov-2007.tar")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            names = [f"ImageSets/Main/{split}.txt"]
            names += [f"{sub}/{i}.{ext}" for i in voc.ids[split] for sub, ext in (("Annotations", "xml"), ("JPEGImages", "jpg"))]
            for name in names:
                tf.add(voc.devkit / name, arcname=f"VOCdevkit/VOC2007/{name}")
        out[fname] = buf.getvalue()
    return out


def write_devkit_sums(voc: TinyVoc) -> None:
    """A SHA256SUMS at the devkit's top listing every file by its path relative to the devkit."""
    files = sorted(p for p in voc.devkit.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    write_sums(voc.devkit, {str(p.relative_to(voc.devkit)): sha256(p.read_bytes()) for p in files})
