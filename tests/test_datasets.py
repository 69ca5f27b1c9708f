"""Data set acquisition: torchvision's real download path against a loopback server,
local mirrors (gz or not, checksummed), ImageFolder tarballs, scikit-learn digits,
and the errors a damaged file must produce. All data are tiny and made here."""

from __future__ import annotations

import gzip
import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd
from fixtures_data import (
    MNIST_NAMES,
    Server,
    TinyCifar,
    cifar_tarball,
    flip_byte,
    idx_bytes,
    md5,
    sha256,
    tar_gz,
    tiny_cifar,
    tiny_mnist,
    write_mnist,
    write_sums,
)
from PIL import Image

from flatscape.core.datasets import (
    CIFAR10_CLASSES,
    DATASET_NAMES,
    DIGITS_TEST_FRACTION,
    DatasetError,
    load,
    materialise,
)
from flatscape.pipeline.io import ArtifactError, save_arrays

TV_CLASS = {"mnist": tvd.MNIST, "kmnist": tvd.KMNIST, "fashion_mnist": tvd.FashionMNIST}


# ---- tiny data: tests/fixtures_data.py; here what needs monkeypatch ------------------------


def patch_cifar_md5s(monkeypatch, cifar: TinyCifar, tarball: bytes | None = None, url: str | None = None) -> None:
    """Point torchvision's CIFAR10 at the tiny files (its md5 lists are class attributes)."""
    digest = {f: md5(b) for f, b in cifar.batches.items()}
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{i}", digest[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", digest["test_batch"]]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": digest["batches.meta"]})
    if tarball is not None:
        monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", md5(tarball))
    if url is not None:
        monkeypatch.setattr(tvd.CIFAR10, "url", url)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no temporary left behind either




def serve_mnist(monkeypatch, server: Server, cls, arrays, *, corrupt: str | None = None) -> None:
    """Serve gzipped IDX files under /<Class>/ and point ``cls.mirrors``/``resources`` at them.

    The md5s are those of the true files; ``corrupt`` names a file served with a flipped byte.
    """
    written = write_mnist(server.root / cls.__name__, arrays, gz=True)
    monkeypatch.setattr(cls, "mirrors", [f"{server.url}/{cls.__name__}/"])
    monkeypatch.setattr(cls, "resources", [(f"{n}.gz", md5(written[f"{n}.gz"])) for n in MNIST_NAMES])
    if corrupt is not None:
        target = server.root / cls.__name__ / corrupt
        data = target.read_bytes()
        target.write_bytes(flip_byte(data, len(data) // 2))


def assert_mnist_artifact(ds, arrays) -> None:
    np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"][:, None])
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels-idx1-ubyte"].astype(np.int64))
    np.testing.assert_array_equal(ds.x_test, arrays["t10k-images-idx3-ubyte"][:, None])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64


# ---- torchvision download path -------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "kmnist", "fashion_mnist"])
def test_download_artifact_equals_served_idx_files(name, server, monkeypatch, tmp_path):
    cls = TV_CLASS[name]
    arrays = tiny_mnist(seed=len(name))
    serve_mnist(monkeypatch, server, cls, arrays)
    meta = materialise(name, tmp_path / "out" / f"{name}.npz", source="download", root=tmp_path / "root")
    ds = load(tmp_path / "out" / f"{name}.npz")
    assert_mnist_artifact(ds, arrays)
    assert ds.name == name and ds.classes == tuple(cls.classes)
    assert {f"/{cls.__name__}/{n}.gz" for n in MNIST_NAMES} <= set(server.requests)
    assert len(meta["checksums_verified"]) == 4 and not meta["cached"]
    assert meta["train_label_counts"] == np.bincount(arrays["train-labels-idx1-ubyte"], minlength=10).tolist()


def test_cached_download_is_not_fetched_again(server, monkeypatch, tmp_path):
    arrays = tiny_mnist(seed=3)
    serve_mnist(monkeypatch, server, tvd.MNIST, arrays)
    materialise("mnist", tmp_path / "a.npz", source="download", root=tmp_path / "root")
    assert server.requests
    server.requests.clear()
    meta = materialise("mnist", tmp_path / "b.npz", source="download", root=tmp_path / "root")
    assert server.requests == [] and meta["cached"]
    assert_mnist_artifact(load(tmp_path / "b.npz"), arrays)


def test_download_cifar10_artifact_equals_served_batches(server, monkeypatch, tmp_path):
    cifar = tiny_cifar(seed=5)
    tarball = cifar_tarball(cifar)
    (server.root / "cifar-10-python.tar.gz").write_bytes(tarball)
    patch_cifar_md5s(monkeypatch, cifar, tarball, url=f"{server.url}/cifar-10-python.tar.gz")
    meta = materialise("cifar10", tmp_path / "c.npz", source="download", root=tmp_path / "root")
    ds = load(tmp_path / "c.npz")
    np.testing.assert_array_equal(ds.x_train, cifar.x_train)
    np.testing.assert_array_equal(ds.y_train, cifar.y_train)
    np.testing.assert_array_equal(ds.x_test, cifar.x_test)
    np.testing.assert_array_equal(ds.y_test, cifar.y_test)
    assert ds.classes == CIFAR10_CLASSES and ds.image_shape == (3, 32, 32)
    assert "/cifar-10-python.tar.gz" in server.requests and not meta["cached"]
    server.requests.clear()
    assert materialise("cifar10", tmp_path / "d.npz", source="download", root=tmp_path / "root")["cached"]
    assert server.requests == []


def test_corrupted_mnist_download_fails_md5_check_and_writes_nothing(server, monkeypatch, tmp_path):
    serve_mnist(monkeypatch, server, tvd.KMNIST, tiny_mnist(seed=7), corrupt="train-labels-idx1-ubyte.gz")
    out = tmp_path / "out" / "kmnist.npz"
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz: md5 [0-9a-f]{32} does not match"):
        materialise("kmnist", out, source="download", root=tmp_path / "root")
    assert_nothing_written(out)


def test_corrupted_cifar_download_fails_md5_check_and_writes_nothing(server, monkeypatch, tmp_path):
    cifar = tiny_cifar(seed=8)
    tarball = cifar_tarball(cifar)
    (server.root / "cifar-10-python.tar.gz").write_bytes(flip_byte(tarball, len(tarball) // 2))
    patch_cifar_md5s(monkeypatch, cifar, tarball, url=f"{server.url}/cifar-10-python.tar.gz")
    out = tmp_path / "out" / "cifar10.npz"
    with pytest.raises(DatasetError, match=r"cifar-10-python\.tar\.gz: md5 [0-9a-f]{32} does not match"):
        materialise("cifar10", out, source="download", root=tmp_path / "root")
    assert_nothing_written(out)


# ---- local mirrors --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "uncompressed"])
def test_mnist_mirror_loads_the_mirror_files(gz, tmp_path):
    arrays = tiny_mnist(seed=11)
    written = write_mnist(tmp_path / "mirror", arrays, gz=gz)
    write_sums(tmp_path / "mirror", {n: sha256(b) for n, b in written.items()})
    if gz:
        write_sums(tmp_path / "mirror", {n: sha256(idx_bytes(a)) for n, a in arrays.items()}, "SHA256SUMS.uncompressed")
    meta = materialise(
        "fashion_mnist", tmp_path / "f.npz", source="mirror", root=tmp_path / "root", path=tmp_path / "mirror"
    )
    assert_mnist_artifact(load(tmp_path / "f.npz"), arrays)
    assert len(meta["checksums_verified"]) == (8 if gz else 4)
    # torchvision's layout: the uncompressed IDX files under <root>/<Class>/raw
    assert sorted(os.listdir(tmp_path / "root" / "FashionMNIST" / "raw")) == sorted(MNIST_NAMES)


@pytest.mark.parametrize("damage", ["truncated", "crc"])
def test_damaged_gz_in_mirror_is_named(damage, tmp_path):
    write_mnist(tmp_path / "mirror", tiny_mnist(seed=12), gz=True)
    victim = tmp_path / "mirror" / "t10k-images-idx3-ubyte.gz"
    data = victim.read_bytes()
    # gzip's trailer is CRC32 then size (8 bytes): flipping a CRC byte leaves a well-formed stream
    victim.write_bytes(data[: len(data) // 2] if damage == "truncated" else flip_byte(data, len(data) - 6))
    out = tmp_path / "out" / "mnist.npz"
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz: truncated or corrupted gzip"):
        materialise("mnist", out, source="mirror", root=tmp_path / "root", path=tmp_path / "mirror")
    assert_nothing_written(out)
    assert not (tmp_path / "root" / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:2] + b"\x0d" + b[3:], r"bad IDX magic 00000d03"),  # float32 type code, not uint8
        (lambda b: b[:-3], r"bytes, but its IDX header dims \(11, 5, 4\) need"),
        (lambda b: b + b"\x00", r"bytes, but its IDX header dims \(11, 5, 4\) need"),
    ],
    ids=["bad_magic", "truncated", "trailing_bytes"],
)
def test_bad_idx_in_mirror_is_named(damage, message, tmp_path):
    write_mnist(tmp_path / "mirror", tiny_mnist(seed=13), gz=False)
    victim = tmp_path / "mirror" / "train-images-idx3-ubyte"
    victim.write_bytes(damage(victim.read_bytes()))
    out = tmp_path / "out" / "mnist.npz"
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: .*" + message):
        materialise("mnist", out, source="mirror", root=tmp_path / "root", path=tmp_path / "mirror")
    assert_nothing_written(out)


def test_bad_idx_inside_gz_is_named_after_the_gz(tmp_path):
    arrays = tiny_mnist(seed=14)
    write_mnist(tmp_path / "mirror", arrays, gz=True)
    bad = idx_bytes(arrays["train-labels-idx1-ubyte"])[:-2]
    (tmp_path / "mirror" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bad))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz \(decompressed\): .* need"):
        materialise("mnist", tmp_path / "m.npz", source="mirror", root=tmp_path / "root", path=tmp_path / "mirror")


@pytest.mark.parametrize("sums_name", ["SHA256SUMS", "SHA256SUMS.uncompressed"])
def test_sha256sums_mismatch_is_named(sums_name, tmp_path):
    arrays = tiny_mnist(seed=15)
    written = write_mnist(tmp_path / "mirror", arrays, gz=True)
    if sums_name == "SHA256SUMS":
        digests = {n: sha256(b) for n, b in written.items()}
        digests["train-labels-idx1-ubyte.gz"] = sha256(b"something else")
    else:
        digests = {n: sha256(idx_bytes(a)) for n, a in arrays.items()}
        digests["train-labels-idx1-ubyte"] = sha256(b"something else")
    write_sums(tmp_path / "mirror", digests, sums_name)
    out = tmp_path / "out" / "mnist.npz"
    message = rf"train-labels-idx1-ubyte.*SHA-256 [0-9a-f]{{64}} does not match .*{sums_name}"
    with pytest.raises(DatasetError, match=message):
        materialise("mnist", out, source="mirror", root=tmp_path / "root", path=tmp_path / "mirror")
    assert_nothing_written(out)
    if sums_name == "SHA256SUMS":  # compressed sums are all checked before anything is unpacked
        assert not (tmp_path / "root" / "MNIST" / "raw").exists()


@pytest.mark.parametrize("layout", ["tarball", "folder"])
def test_cifar_mirror_loads_the_python_batches(layout, monkeypatch, tmp_path):
    cifar = tiny_cifar(seed=16)
    tarball = cifar_tarball(cifar)
    patch_cifar_md5s(monkeypatch, cifar, tarball)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    if layout == "tarball":
        (mirror / "cifar-10-python.tar.gz").write_bytes(tarball)
        write_sums(mirror, {"cifar-10-python.tar.gz": sha256(tarball)})
    else:
        (mirror / "cifar-10-batches-py").mkdir()
        for f, b in cifar.batches.items():
            (mirror / "cifar-10-batches-py" / f).write_bytes(b)
    meta = materialise("cifar10", tmp_path / "c.npz", source="mirror", root=tmp_path / "root", path=mirror)
    ds = load(tmp_path / "c.npz")
    np.testing.assert_array_equal(ds.x_train, cifar.x_train)
    np.testing.assert_array_equal(ds.y_test, cifar.y_test)
    assert len(meta["checksums_verified"]) == (8 if layout == "tarball" else 7)  # 7 batch md5s (+ tarball sha256)


@pytest.mark.parametrize("damage", ["truncated_tarball", "corrupted_batch"])
def test_damaged_cifar_mirror_is_named(damage, monkeypatch, tmp_path):
    cifar = tiny_cifar(seed=17)
    patch_cifar_md5s(monkeypatch, cifar)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    if damage == "truncated_tarball":
        tarball = cifar_tarball(cifar)
        (mirror / "cifar-10-python.tar.gz").write_bytes(tarball[: len(tarball) // 2])
        message = r"cifar-10-python\.tar\.gz: truncated or corrupted tar\.gz"
    else:
        bad = dict(cifar.batches, data_batch_3=flip_byte(cifar.batches["data_batch_3"], 100))
        (mirror / "cifar-10-python.tar.gz").write_bytes(tar_gz({f"cifar-10-batches-py/{f}": b for f, b in bad.items()}))
        message = r"cifar-10-python\.tar\.gz: member cifar-10-batches-py/data_batch_3 has md5"
    out = tmp_path / "out" / "cifar10.npz"
    with pytest.raises(DatasetError, match=message):
        materialise("cifar10", out, source="mirror", root=tmp_path / "root", path=mirror)
    assert_nothing_written(out)


# ---- ImageFolder tarball ----------------------------------------------------------------------


def encode_image(a: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def test_imagefolder_tar_labels_follow_cifar_class_order(tmp_path):
    rng = np.random.default_rng(18)
    members, expected = {}, {"train": [], "test": []}
    # Written in reverse class and file order: the reader must impose CIFAR-10's order itself.
    for split, per_class in (("train", 3), ("test", 2)):
        for label in reversed(range(10)):
            for j in reversed(range(per_class)):
                a = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
                members[f"cifar10/{split}/{CIFAR10_CLASSES[label]}/{j:04d}.png"] = encode_image(a, "PNG")
                expected[split].append((label, j, a))
    members["cifar10/README.txt"] = b"not an image"
    (tmp_path / "f.tar.gz").write_bytes(tar_gz(members))
    materialise("cifar10", tmp_path / "c.npz", source="imagefolder_tar", root=None, path=tmp_path / "f.tar.gz")
    ds = load(tmp_path / "c.npz")
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        order = sorted(expected[split], key=lambda t: (t[0], t[1]))
        np.testing.assert_array_equal(y, [t[0] for t in order])
        np.testing.assert_array_equal(x, np.stack([t[2].transpose(2, 0, 1) for t in order]))  # PNG is lossless
    assert ds.classes == CIFAR10_CLASSES and ds.image_shape == (3, 6, 5)


def test_imagefolder_tar_decodes_jpeg_and_grayscale_to_rgb(tmp_path):
    base = np.full((8, 8), 90, dtype=np.uint8)
    members = {}
    for split in ("train", "test"):
        for label, cls_name in enumerate(CIFAR10_CLASSES):
            colour = np.stack([base + 10 * label, base, base + 5], axis=-1)
            members[f"{split}/{cls_name}/a.jpg"] = encode_image(colour, "JPEG")
            members[f"{split}/{cls_name}/b.png"] = encode_image(base + label, "PNG")  # mode L
    (tmp_path / "f.tar.gz").write_bytes(tar_gz(members))
    materialise("cifar10", tmp_path / "c.npz", source="imagefolder_tar", root=None, path=tmp_path / "f.tar.gz")
    ds = load(tmp_path / "c.npz")
    assert ds.x_train.shape == (20, 3, 8, 8)
    jpeg_red = ds.x_train[0::2, 0].astype(int).mean(axis=(1, 2))
    np.testing.assert_allclose(jpeg_red, 90 + 10 * np.arange(10), atol=3)  # JPEG is lossy, flat colours nearly exact
    gray = ds.x_train[1::2]
    assert (gray == gray[:, :1]).all()  # grey replicated to all three channels
    np.testing.assert_array_equal(gray[:, 0, 0, 0], 90 + np.arange(10))


@pytest.mark.parametrize(
    "members, message",
    [
        ({"train/zebra/0.png": None}, r"member train/zebra/0\.png is in unknown class folder 'zebra'"),
        ({"train/cat/0.png": b"\x89PNG broken"}, r"member train/cat/0\.png is not a decodable image"),
        ({"cat/0.png": None}, r"member cat/0\.png is not under train/<class>/"),
    ],
    ids=["unknown_class", "undecodable", "bad_layout"],
)
def test_bad_imagefolder_tar_member_is_named(members, message, tmp_path):
    png = encode_image(np.zeros((4, 4, 3), np.uint8), "PNG")
    (tmp_path / "f.tar.gz").write_bytes(tar_gz({k: png if v is None else v for k, v in members.items()}))
    with pytest.raises(DatasetError, match=r"f\.tar\.gz: " + message):
        materialise("cifar10", tmp_path / "c.npz", source="imagefolder_tar", root=None, path=tmp_path / "f.tar.gz")


def test_truncated_imagefolder_tar_is_named(tmp_path):
    png = encode_image(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8), "PNG")
    data = tar_gz({f"train/{c}/{i}.png": png for c in CIFAR10_CLASSES for i in range(3)})
    (tmp_path / "f.tar.gz").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out" / "c.npz"
    with pytest.raises(DatasetError, match=r"f\.tar\.gz: truncated or corrupted archive"):
        materialise("cifar10", out, source="imagefolder_tar", root=None, path=tmp_path / "f.tar.gz")
    assert_nothing_written(out)


# ---- scikit-learn digits ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_seed0(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "digits.npz"
    meta = materialise("digits", out, source="sklearn", root=None, seed=0)
    return meta, load(out)


def test_digits_shapes_dtype_and_scaling(digits_seed0):
    from sklearn.datasets import load_digits

    meta, ds = digits_seed0
    n = len(load_digits().target)
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert len(ds.x_train) + len(ds.x_test) == n
    assert meta["n_test"] == math.ceil(DIGITS_TEST_FRACTION * n)  # sklearn rounds the test share up
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0  # 16 -> 255, 0 -> 0
    assert ds.classes == tuple(str(i) for i in range(10))


def labelled_rows(x: np.ndarray, y: np.ndarray) -> list[bytes]:
    return sorted(map(bytes, np.column_stack([x.reshape(len(y), -1), y.astype(np.uint8)])))


def test_digits_split_is_a_stratified_partition(digits_seed0):
    from sklearn.datasets import load_digits

    _, ds = digits_seed0
    digits = load_digits()
    full = np.rint(digits.images * 255 / 16).astype(np.uint8).reshape(len(digits.target), -1)
    # train + test is exactly the bundled set (as a multiset of (image, label) rows)
    got = labelled_rows(np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test]))
    assert got == labelled_rows(full, digits.target)
    per_class = np.bincount(digits.target)
    test_counts = np.bincount(ds.y_test, minlength=10)
    assert (np.abs(test_counts - DIGITS_TEST_FRACTION * per_class) <= 1).all()


def test_digits_split_is_deterministic_in_the_seed(digits_seed0, tmp_path):
    _, ds0 = digits_seed0
    materialise("digits", tmp_path / "a.npz", source="sklearn", root=None, seed=0)
    materialise("digits", tmp_path / "b.npz", source="sklearn", root=None, seed=1)
    again, other = load(tmp_path / "a.npz"), load(tmp_path / "b.npz")
    np.testing.assert_array_equal(again.x_test, ds0.x_test)
    np.testing.assert_array_equal(again.y_test, ds0.y_test)
    assert again.x_test.shape == other.x_test.shape and not np.array_equal(again.x_test, other.x_test)


# ---- the artifact -----------------------------------------------------------------------------


def test_damaged_artifact_raises_artifact_error_naming_it(digits_seed0, tmp_path):
    meta, _ = digits_seed0
    data = Path(meta["out_path"]).read_bytes()
    for label, damaged in (("truncated", data[: len(data) // 2]), ("flipped", flip_byte(data, len(data) // 2))):
        victim = tmp_path / f"{label}.npz"
        victim.write_bytes(damaged)
        with pytest.raises(ArtifactError, match=rf"{label}\.npz: "):
            load(victim)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"x_train": np.zeros((3, 1, 4, 4), np.float32)}, r"x_train is float32"),
        ({"x_train": np.zeros((3, 4, 4), np.uint8)}, r"x_train is uint8 \(3, 4, 4\)"),
        ({"y_train": np.zeros(3, np.int32)}, r"y_train is int32"),
        ({"y_train": np.zeros(2, np.int64)}, r"x_train has 3 images but y_train 2 labels"),
        ({"y_test": np.array([0, 10])}, r"y_test has labels outside 0\.\.9"),
        ({"x_test": np.zeros((2, 1, 5, 4), np.uint8)}, r"differ in shape"),
    ],
    ids=["float_images", "no_channel_axis", "int32_labels", "count_mismatch", "label_range", "shape_mismatch"],
)
def test_artifact_with_wrong_shapes_or_dtypes_is_rejected(change, message, tmp_path):
    arrays = dict(
        x_train=np.zeros((3, 1, 4, 4), np.uint8), y_train=np.zeros(3, np.int64),
        x_test=np.zeros((2, 1, 4, 4), np.uint8), y_test=np.zeros(2, np.int64),
        classes=np.array([str(i) for i in range(10)]), name=np.array("mnist"),
    )
    save_arrays(tmp_path / "a.npz", **{**arrays, **change})
    with pytest.raises(ArtifactError, match=r"a\.npz: .*" + message):
        load(tmp_path / "a.npz")


# ---- argument errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("svhn", dict(source="download"), r"unknown data set 'svhn'"),
        ("mnist", dict(source="torrent"), r"unknown source 'torrent'"),
        ("mnist", dict(source="sklearn"), r"source 'sklearn' is not available for data set 'mnist'"),
        ("digits", dict(source="download"), r"source 'download' is not available for data set 'digits'"),
        ("fashion_mnist", dict(source="imagefolder_tar", path="x.tgz"), r"not available for data set 'fashion_mnist'"),
        ("kmnist", dict(source="mirror"), r"needs a path"),
        ("cifar10", dict(source="imagefolder_tar", path="gone.tgz"), r"'gone.tgz' .* is not an existing file"),
        ("mnist", dict(source="mirror", path="no/such/dir"), r"is not an existing folder"),
        ("mnist", dict(source="download", path="."), r"takes no path"),
        ("mnist", dict(source="download", root=None), r"needs a root folder"),
    ],
)
def test_invalid_request_is_rejected_before_any_work(name, kwargs, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kwargs = {"root": tmp_path / "root", **kwargs}
    with pytest.raises(ValueError, match=message):
        materialise(name, tmp_path / "out" / "x.npz", **kwargs)
    assert not (tmp_path / "out").exists() and not (tmp_path / "root").exists()


def test_every_dataset_name_has_a_valid_source():
    from flatscape.core.datasets import VALID_SOURCES

    assert set(VALID_SOURCES) == set(DATASET_NAMES) and all(VALID_SOURCES[n] for n in DATASET_NAMES)
