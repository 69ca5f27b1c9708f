"""``flatscape``: a ResNet-18 checkpoint with batch norm measured from the command
line, every requested output, and bad input refused before any HVP (issue #16, part 5)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from conftest import REPO
from flatscape.core.flatness import riemannian_spectral_norm
from flatscape.core.models import build_model
from flatscape.flatness.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A ResNet-18 state dict and 8 CIFAR-sized images; 24 digit-sized images for the small models."""
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), d / "r18.pt")
    rng = np.random.default_rng(0)
    np.savez(d / "cifar.npz", x=rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8), y=rng.integers(0, 10, 8))
    np.savez(d / "small.npz", x=rng.integers(0, 256, (24, 1, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 24))
    bad = rng.random((24, 1, 8, 8)).astype(np.float32)
    bad[3, 0, 2, 2] = np.nan
    np.savez(d / "nan.npz", x=bad, y=rng.integers(0, 3, 24))
    torch.manual_seed(1)
    torch.save(build_model("mnist_fc", in_channels=1, image_size=8, num_classes=3).state_dict(), d / "mnist_fc.pt")
    torch.save(build_model("f1", in_channels=1, image_size=8, num_classes=3).state_dict(), d / "f1.pt")
    torch.save({"not": "a state dict"}, d / "junk.pt")
    return d


def test_resnet18_checkpoint_measured_from_the_command_line(files, capsys):
    out = files / "r18.json"
    rc = main(["--model", "torchvision:resnet18", "--weights", str(files / "r18.pt"), "--data", f"npz:{files / 'cifar.npz'}",
               "--samples", "8", "--tol", "1e-2", "--max-hvp", "40", "--json", str(out), "--no-progress"])
    assert rc == 0
    result = json.loads(out.read_text())
    value = result["measures"]["riemannian"]["spectral_norm"]
    assert value["converged"] and math.isfinite(value["value"]) and value["value"] > 0
    assert result["num_blocks"] == 62 and result["num_parameters"] == 11_181_642
    # the command's value is the library's on the same samples (the tool's seeded permutation)
    arrays = np.load(files / "cifar.npz")
    order = np.random.default_rng(0).permutation(8)
    x, y = torch.from_numpy(arrays["x"][order].astype(np.float32) / 255), torch.from_numpy(arrays["y"][order])
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    model.load_state_dict(torch.load(files / "r18.pt", weights_only=True))
    library = riemannian_spectral_norm(model, nn.functional.cross_entropy, (x, y), tol=1e-2, max_hvp=40, batch_size=128)
    assert value["value"] == library.value
    table = capsys.readouterr().out
    assert "11,181,642 parameters in 62 blocks" in table and f"{value['value']:.6g}" in table


def test_every_measure_and_the_density_figure(files, capsys):
    out = files / "all.json"
    rc = main(["--model", "flatscape:f1", "--weights", str(files / "f1.pt"), "--data", f"npz:{files / 'small.npz'}",
               "--samples", "0", "--batch-size", "10", "--dtype", "float64", "--tol", "1e-7", "--measure", "both",
               "--top-k", "3", "--per-layer", "--trace", "--density", "--spread", "3", "--json", str(out), "--no-progress"])
    assert rc == 0
    result = json.loads(out.read_text())
    png = files / "all.density.png"
    assert result["density_plot"] == str(png) and png.read_bytes()[:4] == b"\x89PNG"
    for metric in ("riemannian", "euclidean"):
        m = result["measures"][metric]
        top = m["top_k"]["values"]
        assert top == sorted(top, reverse=True) and m["spectral_norm"]["value"] == top[0]
        assert set(m["per_layer"]) == {"1", "3", "5"} and m["trace"]["num_hvp"] >= 10
        # a diagonal block's top eigenvalue never exceeds the whole operator's (interlacing)
        assert max(v["value"] for v in m["per_layer"].values()) <= top[0] * (1 + 1e-8)
        assert len(m["spread"]["values"]) == 3 and m["spread"]["sizes"] == [8, 8, 8]
        assert m["spread"]["full"] == pytest.approx(top[0], rel=1e-6)
        grid, values = np.array(m["density"]["grid"]), np.array(m["density"]["values"])
        assert np.trapezoid(values, grid) == pytest.approx(1.0, abs=0.05)
    assert "spread over 3 subsets" in capsys.readouterr().out


def _refused(capsys, tmp_path, args: list[str], message: str) -> None:
    out = tmp_path / "never.json"
    samples = [] if "--samples" in args else ["--samples", "0"]
    rc = main([*args, *samples, "--json", str(out), "--density", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("flatscape: error: ") and "\n" not in err, err
    assert message in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the figure


@pytest.mark.parametrize(
    "model, weights, data, message",
    [
        ("torchvision:resnet9000", None, "small", "unknown torchvision model 'resnet9000'"),
        ("flatscape:nope", None, "small", "unknown model 'nope'"),
        ("nosuchpackage.mod:build", None, "small", "cannot load model 'nosuchpackage.mod:build'"),
        ("resnet18", None, "small", "unknown model 'resnet18'"),
        ("flatscape:f1", "missing.pt", "small", "weights file missing.pt does not exist"),
        ("flatscape:f1", "junk.pt", "small", "holds no state dict"),
        ("flatscape:f1", "mnist_fc.pt", "small", "do not match the model: unexpected 11.bias"),
        ("torchvision:resnet18", "r18.pt", "small", "fc.weight (10, 512) vs (3, 512)"),
        ("flatscape:f1", None, "nan", "the loss on the data is not finite"),
        ("flatscape:f1", None, "elsewhere", "data file"),
        ("flatscape:f1", None, "mars", "unknown data 'mars'"),
    ],
)
def test_bad_input_exits_with_one_line_before_any_hvp(files, tmp_path, capsys, model, weights, data, message):
    args = ["--model", model, "--data", data if data == "mars" else f"npz:{files / (data + '.npz')}"]
    if weights:
        args += ["--weights", str(files / weights) if weights != "missing.pt" else "missing.pt"]
    _refused(capsys, tmp_path, args, message)


def test_unsupported_parameter_and_wrong_class_count_are_refused(files, tmp_path, capsys):
    small = f"npz:{files / 'small.npz'}"
    _refused(capsys, tmp_path, ["--model", "torch.nn:LazyLinear", "--model-args", '{"out_features": 3}', "--data", small],
             "unsupported parameter weight: not initialised")
    _refused(capsys, tmp_path, ["--model", "torchvision:resnet18", "--num-classes", "10", "--data", small],
             "data of shape (1, 8, 8) does not fit the model: Given groups=1, weight of size [64, 3, 7, 7]")
    _refused(capsys, tmp_path, ["--model", "flatscape:f1", "--num-classes", "2", "--data", small],
             "not class scores for labels up to 2")
    _refused(capsys, tmp_path, ["--model", "flatscape:f1", "--data", small, "--samples", "25"], "the data holds 24 samples")
    _refused(capsys, tmp_path, ["--model", "flatscape:f1", "--data", small, "--top-k", "0"], "--top-k must be >= 1")


def test_python_dash_m_runs_the_same_command(files, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flatscape.flatness", "--model", "flatscape:nope", "--data", f"npz:{files / 'small.npz'}",
         "--samples", "0"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO / "src"), "PATH": ""}, timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flatscape: error: unknown model 'nope'; ours are f1, c1")


def test_image_folder_and_named_data_sets_are_read(files, tmp_path):
    rng = np.random.default_rng(2)
    for label in ("cat", "dog"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    common = ["--model", "flatscape:f1", "--samples", "0", "--tol", "1e-4", "--no-progress"]
    assert main([*common, "--data", f"imagefolder:{tmp_path / 'images'}", "--json", str(tmp_path / "folder.json")]) == 0
    folder = json.loads((tmp_path / "folder.json").read_text())
    assert folder["samples"] == 6 and folder["input_shape"] == [3, 8, 8]
    # scikit-learn's digits through the pipeline's loader, cached under --data-root
    args = ["--model", "flatscape:f1", "--data", "digits", "--samples", "40", "--data-root", str(tmp_path / "raw"),
            "--tol", "1e-4", "--no-progress", "--json", str(tmp_path / "digits.json")]
    assert main(args) == 0
    digits = json.loads((tmp_path / "digits.json").read_text())
    assert digits["samples"] == 40 and digits["input_shape"] == [1, 8, 8]
    assert (tmp_path / "raw" / "flatscape" / "digits-sklearn.npz").is_file()
