"""Staging (the `data` target): Pascal VOC 2007 downloaded from a loopback server or read
from a mirror, checked and converted to the YOLO layout by our own code; manifests that
compute jobs check before they read; the error each damaged input gives."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import (
    PROXY_VARS,
    tiny_mnist,
    voc_tars,
    write_devkit_sums,
    write_mnist,
    write_sums,
    write_voc_devkit,
)

from flatscape.ch4.partial.detection import (
    DetectionDataSettings,
    build_partial_detection_data,
)
from flatscape.core.datasets import DatasetError, load, materialise, stage
from flatscape.core.datasets.voc import VocTar, stage_voc2007, voc_yolo_dir




def _tars(server, voc, *, corrupt: str | None = None) -> tuple[VocTar, ...]:
    out = []
    for fname, data in voc_tars(voc).items():
        md5 = hashlib.md5(data).hexdigest()
        if fname == corrupt:
            data = data[: len(data) // 2]  # a partial download
        (server.root / fname).write_bytes(data)
        out.append(VocTar(f"{server.url}/{fname}", fname, md5))
    return tuple(out)


def _yolo_rows(path: Path) -> list[tuple[float, ...]]:
    return [tuple(float(v) for v in line.split()) for line in path.read_text().splitlines()]


def test_voc_download_is_fetched_md5_checked_unpacked_and_converted(server, tmp_path):
    voc = write_voc_devkit(tmp_path / "src", n_trainval=5, n_test=3)
    tars = _tars(server, voc)
    meta = stage_voc2007(tmp_path / "root", source="download", tars=tars)
    assert set(server.requests) == {"/VOCtest_06-Nov-2007.tar", "/VOCtrainval_06-Nov-2007.tar"}
    assert (meta["trainval"], meta["test"]) == (5, 3) and len(meta["checksums_verified"]) == 2
    yolo = voc_yolo_dir(tmp_path / "root")
    for split, ids in voc.ids.items():
        assert sorted(p.stem for p in (yolo / "images" / split).glob("*.jpg")) == ids
        for image_id in ids:
            got = _yolo_rows(yolo / "labels" / split / f"{image_id}.txt")
            np.testing.assert_allclose(got, voc.labels[image_id] or np.zeros((0,)), atol=1e-6)
    # difficult objects are dropped: image 000001 has two objects, one difficult
    assert len(_yolo_rows(yolo / "labels/trainval/000001.txt")) == 1
    server.requests.clear()
    stage_voc2007(tmp_path / "root", source="download", tars=tars)
    assert server.requests == []  # verified tars are not fetched again


def test_partial_voc_download_fails_naming_the_tar_and_the_data_target(server, tmp_path):
    voc = write_voc_devkit(tmp_path / "src", n_trainval=3, n_test=2)
    tars = _tars(server, voc, corrupt="VOCtest_06-Nov-2007.tar")
    with pytest.raises(DatasetError, match=r"VOCtest_06-Nov-2007\.tar: download of .* failed .*snakemake data"):
        stage_voc2007(tmp_path / "root", source="download", tars=tars)
    assert not voc_yolo_dir(tmp_path / "root").exists()


def test_offline_voc_download_names_the_data_target_and_the_mirror(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on: what an offline node sees
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    tars = (VocTar(f"http://127.0.0.1:{port}/VOCtrainval_06-Nov-2007.tar", "VOCtrainval_06-Nov-2007.tar", "0" * 32),)
    with pytest.raises(DatasetError, match=r"login node.*snakemake data.*source: mirror"):
        stage_voc2007(tmp_path / "root", source="download", tars=tars)


@pytest.mark.parametrize("given", ["folder_above", "VOCdevkit", "VOC2007"])
def test_voc_mirror_is_converted_wherever_its_path_points(given, tmp_path):
    voc = write_voc_devkit(tmp_path / "mirror", n_trainval=2, n_test=2)
    write_devkit_sums(voc)
    path = {"folder_above": tmp_path / "mirror", "VOCdevkit": voc.devkit.parent, "VOC2007": voc.devkit}[given]
    meta = stage_voc2007(tmp_path / "root", source="mirror", path=path)
    assert (meta["trainval"], meta["test"]) == (2, 2)
    files = [p for p in voc.devkit.rglob("*") if p.is_file() and p.name != "SHA256SUMS"]
    assert len(meta["checksums_verified"]) == len(files) == 2 * 4 + 2  # every listed file was checked


def _damage(voc, what: str) -> tuple[Path, str]:
    first = voc.ids["trainval"][1]
    xml, jpg = voc.devkit / "Annotations" / f"{first}.xml", voc.devkit / "JPEGImages" / f"{first}.jpg"
    if what == "missing_xml":
        xml.unlink()
        return xml, "annotation missing for a listed image"
    if what == "bad_xml":
        xml.write_text(xml.read_text()[:-20])
        return xml, "not well-formed XML"
    if what == "truncated_jpeg":
        jpg.write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
        return jpg, "not a (readable|complete) JPEG"
    if what == "not_a_jpeg":
        jpg.write_bytes(b"hello")
        return jpg, "not a readable JPEG"
    listing = voc.devkit / "ImageSets" / "Main" / "test.txt"
    listing.unlink()
    return listing, "the test list is missing"


@pytest.mark.parametrize("what", ["missing_xml", "bad_xml", "truncated_jpeg", "not_a_jpeg", "missing_list"])
def test_damaged_voc_mirror_names_the_file_and_the_fix(what, tmp_path):
    voc = write_voc_devkit(tmp_path / "mirror", n_trainval=3, n_test=2)
    bad, message = _damage(voc, what)
    with pytest.raises(DatasetError, match=rf"{bad}: {message}.*rerun `snakemake data"):
        stage(
            "voc2007", tmp_path / "staged" / "voc2007.json", source="mirror", path=tmp_path / "mirror",
            root=tmp_path / "root",
        )
    assert not voc_yolo_dir(tmp_path / "root").exists() and not (tmp_path / "staged").exists()


def test_voc_mirror_with_a_wrong_checksum_is_named(tmp_path):
    voc = write_voc_devkit(tmp_path / "mirror", n_trainval=2, n_test=1)
    write_devkit_sums(voc)
    jpg = voc.devkit / "JPEGImages" / f"{voc.ids['test'][0]}.jpg"
    jpg.write_bytes(jpg.read_bytes()[:-3] + b"\x00\xff\xd9")
    with pytest.raises(DatasetError, match=rf"{jpg}: SHA-256 [0-9a-f]+ does not match .*SHA256SUMS"):
        stage_voc2007(tmp_path / "root", source="mirror", path=tmp_path / "mirror")


def test_detection_job_reads_the_staged_voc_and_fails_clearly_without_it(tmp_path):
    voc = write_voc_devkit(tmp_path / "mirror", n_trainval=2, n_test=2)
    root, manifest = tmp_path / "root", tmp_path / "staged" / "voc2007.json"
    settings = DetectionDataSettings("voc2007", 1, 1, 64, 1, (0.1, 0.5), 0, str(root))
    with pytest.raises(DatasetError, match=r"not staged.*snakemake --cores 1 data"):
        build_partial_detection_data(settings, tmp_path / "data", staged=None)
    stage("voc2007", manifest, source="mirror", path=voc.devkit, root=root)
    counts = build_partial_detection_data(settings, tmp_path / "data", staged=manifest)
    assert counts["trainval"] == 2 and counts["test"] == 2
    assert "images/trainval" in (tmp_path / "data" / "data.yaml").read_text()
    next((voc_yolo_dir(root) / "labels" / "test").glob("*.txt")).unlink()  # staged data damaged afterwards
    with pytest.raises(DatasetError, match=r"labels/test: 1 labels where staging wrote 2; delete .*voc2007\.json"):
        build_partial_detection_data(settings, tmp_path / "data2", staged=manifest)


def test_staged_mnist_mirror_is_read_without_download_and_a_lost_file_is_named(tmp_path):
    arrays = tiny_mnist(seed=4)
    written = write_mnist(tmp_path / "mirror", arrays, gz=True)
    write_sums(tmp_path / "mirror", {n: hashlib.sha256(b).hexdigest() for n, b in written.items()})
    root, manifest = tmp_path / "root", tmp_path / "staged" / "kmnist.json"
    meta = stage("kmnist", manifest, source="mirror", path=tmp_path / "mirror", root=root)
    assert len(meta["files"]) == 4 and len(meta["checksums_verified"]) == 4
    assert json.loads(manifest.read_text())["files"] == meta["files"]
    out = materialise("kmnist", tmp_path / "k.npz", source="mirror", path=tmp_path / "mirror", root=root,
                      staged=manifest)  # fmt: skip
    np.testing.assert_array_equal(load(tmp_path / "k.npz").x_test, arrays["t10k-images-idx3-ubyte"][:, None])
    assert out["n_train"] == 11
    lost = root / "KMNIST" / "raw" / "train-images-idx3-ubyte"
    lost.unlink()
    with pytest.raises(DatasetError, match=rf"{lost}: staged file of 'kmnist' is missing; .*snakemake --cores 1 data"):
        materialise("kmnist", tmp_path / "k2.npz", source="download", root=root, staged=manifest)
    assert not (tmp_path / "k2.npz").exists() and not lost.exists()  # nothing was downloaded


def test_a_non_jpeg_is_named_even_after_ultralytics_patched_pil(tmp_path):
    """Ultralytics replaces PIL's Image.open with one that turns an unidentified file into an
    import error (pi_heif); a process that loaded it must still get the clear error."""
    from flatscape.ch4.detection.yolo import ultralytics_offline
    from flatscape.core.datasets.voc import check_jpeg

    ultralytics_offline(tmp_path / "ultralytics")
    import ultralytics.utils.patches  # noqa: F401  (the patch under test)

    image = tmp_path / "000001.jpg"
    image.write_bytes(b"hello")
    with pytest.raises(DatasetError, match="not a readable JPEG"):
        check_jpeg(image, (96, 80))
