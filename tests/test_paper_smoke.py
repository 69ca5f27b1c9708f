"""The `paper` target end to end at smoke scale (tests/configs/paper_smoke.yaml over
config/paper.yaml): every paper network, rule, table and figure, on small data written
here in each real on-disk format and staged by the `data` target (MNIST, Fashion-MNIST,
CIFAR-10 and VOC 2007 from mirrors; KMNIST through torchvision's real download path from
a loopback server)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, deep_merge
from fixtures_data import (
    MNIST_NAMES,
    PROXY_VARS,
    http_server,
    tiny_cifar,
    tiny_mnist,
    write_mnist,
    write_sums,
    write_voc_devkit,
)
from workflow_helpers import SNAKEMAKE, scratch_workflow

# Part of the default run (about 7 min of it on 2 idle cores); alone: `pytest -m paper_smoke`.
pytestmark = [pytest.mark.slow, pytest.mark.paper_smoke]

PRESET = "paper_smoke"
RES = f"results/{PRESET}"

# Snakemake runs each job's script in a new Python; this sitecustomize (on PYTHONPATH, for
# this test only) points torchvision's KMNIST download and CIFAR-10 md5 lists at the fixtures.
SITECUSTOMIZE = '''
import json, os, sys
_cfg = os.environ.get("FLATSCAPE_SMOKE_TORCHVISION")
if _cfg and any(("stage_dataset" in a or "fetch_dataset" in a) for a in sys.argv):
    import torchvision.datasets as tvd
    with open(_cfg) as fh:
        _c = json.load(fh)
    tvd.KMNIST.mirrors = _c["kmnist_mirrors"]
    tvd.KMNIST.resources = [tuple(r) for r in _c["kmnist_resources"]]
    tvd.CIFAR10.train_list = _c["cifar_train_list"]
    tvd.CIFAR10.test_list = _c["cifar_test_list"]
    tvd.CIFAR10.meta = _c["cifar_meta"]
'''


def _write_fixtures(work, served) -> dict:
    """The data sets in their real formats; returns what the sitecustomize needs."""
    fx = work / "fixtures"
    for name, seed in (("mnist", 1), ("fashion_mnist", 2)):
        written = write_mnist(fx / name, tiny_mnist(seed, n_train=300, n_test=100, hw=(28, 28)), gz=True)
        write_sums(fx / name, {n: hashlib.sha256(b).hexdigest() for n, b in written.items()})
    kmnist = write_mnist(served / "KMNIST", tiny_mnist(3, n_train=300, n_test=100, hw=(28, 28)), gz=True)
    cifar = tiny_cifar(4, per_batch=60, n_test=100)
    (fx / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    for fname, data in cifar.batches.items():
        (fx / "cifar10" / "cifar-10-batches-py" / fname).write_bytes(data)
    write_voc_devkit(fx / "voc", n_trainval=16, n_test=8, size=(96, 80))
    digest = {f: hashlib.md5(b).hexdigest() for f, b in cifar.batches.items()}
    return {
        "kmnist_resources": [[f"{n}.gz", hashlib.md5(kmnist[f"{n}.gz"]).hexdigest()] for n in MNIST_NAMES],
        "cifar_train_list": [[f"data_batch_{i}", digest[f"data_batch_{i}"]] for i in range(1, 6)],
        "cifar_test_list": [["test_batch", digest["test_batch"]]],
        "cifar_meta": {"filename": "batches.meta", "key": "label_names", "md5": digest["batches.meta"]},
    }


def smoke(work, *args, env, check=True, timeout=900):
    cmd = [SNAKEMAKE, *args, "--cores", "2", "--directory", str(work), "--snakefile", str(work / "Snakefile"),
           "--configfile", "config/paper.yaml", "paper_smoke.yaml"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    """A scratch workflow on which `data`, then `paper`, ran at smoke scale; yields (work, env, seconds)."""
    work = scratch_workflow(tmp_path_factory.mktemp("paper"))
    (work / "paper_smoke.yaml").write_text((REPO / "tests/configs/paper_smoke.yaml").read_text())
    served = work / "served"
    served.mkdir()
    with http_server(served) as srv:
        patch = _write_fixtures(work, served)
        patch["kmnist_mirrors"] = [f"{srv.url}/KMNIST/"]
        (work / "torchvision_patch.json").write_text(json.dumps(patch))
        (work / "site").mkdir()
        (work / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
        env.update(no_proxy="127.0.0.1,localhost", PYTHONPATH=str(work / "site"),
                   FLATSCAPE_SMOKE_TORCHVISION=str(work / "torchvision_patch.json"))  # fmt: skip
        t0 = time.perf_counter()
        staged = smoke(work, "data", env=env)
        requests = list(srv.requests)
    paper = smoke(work, "paper", env=env)
    seconds = time.perf_counter() - t0
    (work / "smoke_seconds.txt").write_text(f"{seconds:.1f}\n")
    yield {"work": work, "env": env, "seconds": seconds, "requests": requests, "data_log": staged.stdout + staged.stderr,
           "paper_log": paper.stdout + paper.stderr}  # fmt: skip


def test_data_target_staged_every_data_set_and_kmnist_came_over_http(paper_run):
    work = paper_run["work"]
    staged = sorted(p.stem for p in (work / RES / "datasets/staged").glob("*.json"))
    assert staged == ["cifar10", "fashion_mnist", "kmnist", "mnist", "voc2007"]
    assert {f"/KMNIST/{n}.gz" for n in MNIST_NAMES} <= set(paper_run["requests"])
    voc = json.loads((work / RES / "datasets/staged/voc2007.json").read_text())
    assert (voc["trainval"], voc["test"]) == (16, 8)
    mnist = json.loads((work / RES / "datasets/staged/mnist.json").read_text())
    assert len(mnist["checksums_verified"]) >= 4 and len(mnist["files"]) == 4


def test_paper_target_is_complete_and_up_to_date(paper_run):
    proc = smoke(paper_run["work"], "--dry-run", "paper", env=paper_run["env"])
    assert "Nothing to be done" in proc.stdout + proc.stderr
    tables = {p.stem for p in (paper_run["work"] / RES / "tables").glob("*.csv")}
    figures = {p.stem for p in (paper_run["work"] / RES / "figures").glob("*.png")}
    assert {"table_2_1", "table_2_2", "table_3_1", "table_3_2", "table_3_3", "table_3_4", "table_3_5", "table_3_6",
            "table_3_7", "table_4_1", "table_4_2", "table_4_3", "table_4_4", "table_4_2c_map50"} <= tables
    assert {"figure_2_1", "figure_2_2", "figure_3_1", "figure_3_2", "figure_3_3", "figure_3_4", "figure_3_5",
            "figure_3_6", "figure_4_2a", "figure_4_2b", "figure_4_2c", "figure_4_3", "figure_4_4", "figure_4_5"} <= figures
    for name in figures:
        assert (paper_run["work"] / RES / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _our_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows this run computed (tables that print the thesis beside ours mark them in `source`)."""
    return df[df["source"] == "this run"] if "source" in df.columns else df


# Cells that are empty (NaN) by design at smoke scale, by column name; anything else must be finite.
UNDEFINED_AT_SMOKE_SCALE = {
    r"thesis": "the thesis printed no value for the smoke sizes",
    r"ratio_to_thesis|closest_ratio|median_abs_log10|spearman|geometric_mean_ratio": "compared with thesis cells",
    r"_std$": "a standard deviation of one run",
    r"^(tau|p)_": "Kendall's tau over one run per batch size",
    r"^granulated_|^psi$": "Jiang et al.'s granulated tau over one run per setting",
    r"^large_small_ratio": "printed on the large-batch row only",
}
# Chapter 4b's detection quality is undefined where a one-epoch detector detected nothing.
UNDETECTED = r"DICE|centroid|classification rate|Silverado|Ram|Frontier"


def test_every_numeric_cell_of_every_table_is_finite(paper_run):
    bad, checked = [], 0
    for csv in sorted((paper_run["work"] / RES / "tables").glob("*.csv")):
        df = _our_rows(pd.read_csv(csv))
        numeric = df.select_dtypes(include=[np.number])
        for col in numeric.columns:
            values = numeric[col].to_numpy(dtype=float)
            assert not np.isinf(values).any(), f"{csv.name}:{col} = {values.tolist()}"
            excused = any(re.search(pat, col) for pat in UNDEFINED_AT_SMOKE_SCALE) or (
                csv.name.startswith("table_4_") and re.search(UNDETECTED, col))
            if excused:
                continue
            checked += 1
            if not np.isfinite(values).all():
                bad.append(f"{csv.name}:{col} = {values.tolist()}")
    assert not bad, "\n".join(bad)
    assert checked > 100  # the excuses cover a few columns, not the tables


def test_table_3_7_has_all_eight_rows_of_table_3_4(paper_run):
    work = paper_run["work"]
    t34 = pd.read_csv(work / RES / "tables/table_3_4.csv")  # a row per data set, a column per network
    t37 = _our_rows(pd.read_csv(work / RES / "tables/table_3_7.csv"))
    assert t34.filter(like="network").notna().sum().sum() == 8
    rows = {(r.dataset, r.network) for r in t37.itertuples()} if "network" in t37.columns else set()
    assert len(rows) == 8 and len(t37) == 16  # 8 rows x 2 batch sizes


@pytest.mark.parametrize("row", ["cifar10-vgg16_cifar", "cifar10-alexnet_cifar"])
def test_vgg16_and_alexnet_flatness_converged(paper_run, row):
    files = sorted((paper_run["work"] / RES / "ch3/minima" / row).glob("*_flatness.json"))
    measured = [json.loads(p.read_text()) for p in files]
    measured = [m for m in measured if any(k.endswith("_converged") for k in m)]
    assert len(measured) == 2, [str(p) for p in files]  # small and large batch
    for m in measured:
        flags = {k: v for k, v in m.items() if k.endswith("_converged")}
        assert flags and all(flags.values()), flags
        values = [v for k, v in m.items() if k.startswith("riemannian") and isinstance(v, float)]
        assert values and all(np.isfinite(values)) and all(v > 0 for v in values)


def test_figure_4_2c_table_has_both_detectors_at_every_ratio(paper_run):
    df = pd.read_csv(paper_run["work"] / RES / "tables/table_4_2c_map50.csv")
    cfg = yaml.safe_load((REPO / "tests/configs/paper_smoke.yaml").read_text())
    labels = [f"{float(r):g}" for r in cfg["ch4"]["detection"]["partial"]["test_ratios"]]  # the table's column names
    assert len(df) == 2 and df["method"].str.contains("Ours").sum() == 1, df
    values = df[labels].to_numpy(dtype=float)  # a KeyError names a missing ratio
    assert np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all(), df


def test_restaging_makes_nothing_out_of_date(paper_run):
    work, env = paper_run["work"], paper_run["env"]
    smoke(work, "data", "--forcerun", "stage_dataset", env=env, check=False)
    proc = smoke(work, "--dry-run", "paper", env=env)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_missing_staged_data_fails_the_job_naming_the_data_target(paper_run, tmp_path):
    work, env = paper_run["work"], paper_run["env"]
    cfg = deep_merge(yaml.safe_load((work / "paper_smoke.yaml").read_text()), {"preset": "paper_smoke_lost"})
    (work / "paper_smoke_lost.yaml").write_text(yaml.safe_dump(cfg))
    staged = work / "results/paper_smoke_lost/datasets/staged"
    staged.mkdir(parents=True)
    manifest = json.loads((work / RES / "datasets/staged/kmnist.json").read_text())
    raw = next(iter(manifest["files"]))
    manifest["files"][raw + ".lost"] = manifest["files"][raw]
    (staged / "kmnist.json").write_text(json.dumps(manifest))
    cmd = [SNAKEMAKE, "results/paper_smoke_lost/datasets/kmnist.npz", "--cores", "1", "--directory", str(work),
           "--snakefile", str(work / "Snakefile"), "--configfile", "config/paper.yaml", "paper_smoke_lost.yaml"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, env=env, check=False)
    log = (work / "logs/paper_smoke_lost/datasets/kmnist.log").read_text()
    assert proc.returncode != 0 and "staged file of 'kmnist' is missing" in log and "snakemake --cores 1 data" in log
