"""``flatscape --measure`` with the field's other measures (issue 26): the command's
value is the library's on the same samples, and bad options are refused before any compute."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from flatscape.core.flatness import GENERALIZATION_MEASURES, MEASURE_FUNCTIONS
from flatscape.core.models import build_model
from flatscape.flatness.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

OPTIONS = {
    "adaptive_sharpness": (["--rho", "0.2", "--steps", "3"], dict(rho=0.2, steps=3, seed=0)),
    "adaptive_sharpness_avg": (["--rho", "0.05", "--mc-samples", "3"], dict(rho=0.05, samples=3, seed=0)),
    "pac_bayes_flatness": (["--mc-samples", "2", "--steps", "5", "--criterion", "loss", "--bound", "0.2"],
                           dict(samples=2, steps=5, criterion="loss", bound=0.2, seed=0)),
    "pac_bayes_mag_flatness": (["--mc-samples", "2", "--steps", "5", "--mag-eps", "0"],
                               dict(samples=2, steps=5, eps=0.0, seed=0)),
    "riemannian_trace": (["--max-hvp", "5"], dict(probes=5, tol=1e-2, seed=0)),
    "relative_flatness": ([], {}),
    "fisher_rao_norm": ([], {}),
}  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gcli")
    rng = np.random.default_rng(0)
    np.savez(d / "small.npz", x=rng.integers(0, 256, (24, 1, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 24))
    torch.manual_seed(1)
    torch.save(build_model("f1", in_channels=1, image_size=8, num_classes=3).state_dict(), d / "f1.pt")
    return d


def _samples(files):
    """The samples in the tool's order (a permutation seeded with --seed)."""
    arrays = np.load(files / "small.npz")
    order = np.random.default_rng(0).permutation(24)
    return torch.from_numpy(arrays["x"][order].astype(np.float32) / 255), torch.from_numpy(arrays["y"][order])


@pytest.mark.parametrize("name", GENERALIZATION_MEASURES)
def test_each_measure_from_the_command_line_is_the_librarys(files, capsys, name):
    out = files / f"{name}.json"
    args, kwargs = OPTIONS[name]
    rc = main(["--model", "flatscape:f1", "--weights", str(files / "f1.pt"), "--data", f"npz:{files / 'small.npz'}",
               "--samples", "0", "--batch-size", "0", "--measure", name, *args, "--json", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    got = json.loads(out.read_text())["measures"][name]
    model = build_model("f1", in_channels=1, image_size=8, num_classes=3)
    model.load_state_dict(torch.load(files / "f1.pt", weights_only=True))
    library = MEASURE_FUNCTIONS[name](model, nn.functional.cross_entropy, _samples(files), **kwargs)
    assert math.isfinite(got["value"]) and got["value"] == pytest.approx(library.value, rel=1e-6)
    assert f"{got['value']:.6g}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--measure", "adaptive_sharpness", "--rho", "0"], "--rho must be a positive number"),
        (["--measure", "adaptive_sharpness", "--steps", "0"], "--steps must be >= 1"),
        (["--measure", "adaptive_sharpness_avg", "--mc-samples", "-3"], "--mc-samples must be >= 1"),
        (["--measure", "pac_bayes_flatness", "--bound", "-0.1"], "--bound must be a positive number"),
        (["--measure", "pac_bayes_mag_flatness", "--mag-eps", "-1"], "--mag-eps must be >= 0"),
        (["--measure", "fisher_rao_norm", "--trace"], "--trace apply to --measure riemannian, euclidean or both"),
    ],
)
def test_bad_options_are_refused_before_anything_is_loaded(files, tmp_path, capsys, args, message):
    out = tmp_path / "never.json"
    # weights that do not exist: refused on the option first, so nothing is loaded
    rc = main(["--model", "flatscape:f1", "--weights", "missing.pt", "--data", f"npz:{files / 'small.npz'}",
               *args, "--json", str(out), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("flatscape: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_user_models_entry_takes_the_new_measures_and_their_options():
    """The workflow's user_models entries are the tool's options: the schema fills the new ones."""
    import yaml

    from conftest import REPO
    from flatscape.flatness.settings import FlatnessSettings
    from flatscape.pipeline.config import ConfigError, settings, validate_config

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["user_models"] = [{"name": "m", "model": "flatscape:f1", "data": "digits", "measure": "adaptive_sharpness", "rho": 0.3}]
    entry = dict(validate_config(cfg)["user_models"][0])
    entry.pop("name")
    s = settings(FlatnessSettings, entry | {"device": "cpu", "data_source": None, "data_root": "data/raw",
                                           "data_path": None, "data_artifact": None})  # fmt: skip
    assert s.measure == "adaptive_sharpness" and s.rho == 0.3 and s.steps is None and s.criterion == "error"
    cfg["user_models"][0]["rho"] = 0
    with pytest.raises(ConfigError, match="rho"):
        validate_config(cfg)
